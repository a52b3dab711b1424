// SSH keys for EC2 key pairs: generation with OpenSSL, the formats EC2 hands out and takes
// in, and EC2's fingerprints (docs/cloud.md, "Key pairs").
//
//   - A created rsa key (2048 bits) is returned as PEM PKCS#1 ("BEGIN RSA PRIVATE KEY"),
//     an ed25519 key in OpenSSH's own format ("BEGIN OPENSSH PRIVATE KEY", PROTOCOL.key in
//     OpenSSH's source), unencrypted, as EC2 returns them.
//   - Public keys are OpenSSH one-line keys, "ssh-rsa|ssh-ed25519 BASE64 [comment]", whose
//     BASE64 is the wire blob of RFC 4253 §6.6 (rsa: string, mpint e, mpint n) or RFC 8709
//     (ed25519: string, string of 32 bytes).
//   - Fingerprints as real EC2 computes them (its "verify the fingerprint" guide and what
//     its API returns): a created rsa key, SHA-1 of the DER PKCS#8 private key; an imported
//     rsa key, MD5 of the DER SubjectPublicKeyInfo; both as colon-separated lower-case hex.
//     An ed25519 key, SHA-256 of the wire blob in base64 *with* its '=' padding (EC2's
//     spelling; ssh-keygen drops the padding and adds "SHA256:").
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace nimbus::cloud {

enum class SshKeyType { kRsa, kEd25519 };
std::string_view key_type_name(SshKeyType t);  // "rsa" | "ed25519", EC2's KeyType

inline constexpr unsigned kRsaGeneratedBits = 2048;
inline constexpr unsigned kRsaMinBits = 2048;  // smaller imported keys are refused
// EC2 takes up to 4096; OpenSSL's check of a larger modulus (a Miller-Rabin round) costs
// ever more CPU for a client to ask for.
inline constexpr unsigned kRsaMaxBits = 8192;
inline constexpr size_t kMaxPublicKeyLine = 16384;

struct SshPublicKey {
  SshKeyType type = SshKeyType::kRsa;
  std::string blob;   // the wire form
  unsigned bits = 0;  // rsa: the modulus's; ed25519: 256
};

struct GeneratedKey {
  SshPublicKey public_key;
  std::string private_key;  // PEM text, as CreateKeyPair's keyMaterial
  std::string fingerprint;  // EC2's for a created key
};

// A new key pair; `comment` goes into an OpenSSH private key (ed25519). kInternal when
// OpenSSL fails.
Result<GeneratedKey> generate_ssh_key(SshKeyType type, std::string_view comment);

// Parses an OpenSSH public key line (one line, a trailing newline allowed; no options
// prefix as authorized_keys allows, no RFC 4716 "---- BEGIN SSH2 PUBLIC KEY ----" block,
// no PEM): ssh-rsa (2048-8192 bits, checked by OpenSSL) or ssh-ed25519. kInvalidArgument
// with the reason otherwise.
Result<SshPublicKey> parse_openssh_public_key(std::string_view line);
// The same checks on a wire blob alone.
Result<SshPublicKey> parse_ssh_public_blob(std::string_view blob);

// "ssh-ed25519 BASE64 COMMENT" ("ssh-ed25519 BASE64" for an empty comment).
std::string openssh_public_line(const SshPublicKey& key, std::string_view comment);

// EC2's fingerprint of an imported key (see above).
Result<std::string> imported_key_fingerprint(const SshPublicKey& key);
// base64(SHA-256(blob)) with padding: an ed25519 key's, created or imported.
std::string sha256_base64_fingerprint(std::string_view blob);
// "0a:1b:..." of `digest` bytes.
std::string colon_hex(std::string_view digest);

}  // namespace nimbus::cloud
