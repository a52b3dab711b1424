#include "cloud/ssh_keys.h"

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>

#include "cloud/base64.h"

namespace nimbus::cloud {

namespace {

constexpr std::string_view kRsaName = "ssh-rsa";
constexpr std::string_view kEd25519Name = "ssh-ed25519";
constexpr size_t kEd25519Bytes = 32;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct EncoderFree {
  void operator()(OSSL_ENCODER_CTX* p) const { OSSL_ENCODER_CTX_free(p); }
};
struct BldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;
using Bn = std::unique_ptr<BIGNUM, BnFree>;

// A string that is wiped before it is freed: private key bytes pass through these.
struct Secret {
  std::string bytes;
  Secret() = default;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret() {
    if (!bytes.empty()) OPENSSL_cleanse(bytes.data(), bytes.size());
  }
};

// --- the SSH wire format (RFC 4251 §5)
void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}
void put_string(std::string& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}
// mpint of a non-negative number: big-endian, minimal, a zero byte before a high bit.
void put_mpint(std::string& out, const BIGNUM* bn) {
  std::string bytes(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
  if (!bytes.empty() && (static_cast<unsigned char>(bytes[0]) & 0x80)) bytes.insert(0, 1, '\0');
  put_string(out, bytes);
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool string(std::string_view* out) {
    if (data_.size() - pos_ < 4) return false;
    uint32_t n = 0;
    for (int k = 0; k < 4; ++k) n = (n << 8) | static_cast<unsigned char>(data_[pos_ + k]);
    pos_ += 4;
    if (n > data_.size() - pos_) return false;  // checked before anything is allocated
    *out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

Status bad_key(std::string_view why) {
  return Status::invalid_argument(
      fmt::format("Key is not in valid OpenSSH public key format: {}", why));
}

std::string digest(std::string_view data, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out, &n, md, nullptr) != 1) return "";
  return std::string(reinterpret_cast<char*>(out), n);
}

// The key encoded by OpenSSL's encoders ("PEM"/"DER", structure "type-specific" for
// PKCS#1, "PrivateKeyInfo" for PKCS#8).
Status encode(EVP_PKEY* key, int selection, const char* format, const char* structure,
              std::string* out) {
  std::unique_ptr<OSSL_ENCODER_CTX, EncoderFree> ctx(
      OSSL_ENCODER_CTX_new_for_pkey(key, selection, format, structure, nullptr));
  if (!ctx || OSSL_ENCODER_CTX_get_num_encoders(ctx.get()) == 0)
    return Status::internal(fmt::format("OpenSSL has no {} {} encoder", format, structure));
  unsigned char* data = nullptr;
  size_t len = 0;
  if (OSSL_ENCODER_to_data(ctx.get(), &data, &len) != 1 || !data)
    return Status::internal(fmt::format("OpenSSL could not encode the key as {}", structure));
  out->assign(reinterpret_cast<char*>(data), len);
  OPENSSL_clear_free(data, len);
  return Status();
}

Result<Bn> bn_param(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1 || !bn)
    return Status::internal(fmt::format("OpenSSL has no RSA parameter {}", name));
  return Bn(bn);
}

std::string rsa_blob(const BIGNUM* e, const BIGNUM* n) {
  std::string blob;
  put_string(blob, kRsaName);
  put_mpint(blob, e);
  put_mpint(blob, n);
  return blob;
}

std::string ed25519_blob(std::string_view pub) {
  std::string blob;
  put_string(blob, kEd25519Name);
  put_string(blob, pub);
  return blob;
}

// An mpint that must be positive (RFC 4251 §5: two's complement, so a high bit is negative).
Result<Bn> positive_mpint(std::string_view bytes, std::string_view what) {
  if (bytes.empty() || (static_cast<unsigned char>(bytes[0]) & 0x80))
    return bad_key(fmt::format("the RSA {} is not a positive number", what));
  if (bytes.size() > 1 && bytes[0] == 0 && !(static_cast<unsigned char>(bytes[1]) & 0x80))
    return bad_key(fmt::format("the RSA {} has a superfluous leading zero", what));
  BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                         static_cast<int>(bytes.size()), nullptr);
  if (!bn) return Status::internal("OpenSSL could not hold a number");
  return Bn(bn);
}

// An RSA public key from e and n, for OpenSSL's checks and the DER form.
Result<Pkey> rsa_public_pkey(const BIGNUM* e, const BIGNUM* n) {
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e) != 1)
    return Status::internal("OpenSSL could not build RSA parameters");
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1 || !key)
    return bad_key("OpenSSL does not take it as an RSA public key");
  return Pkey(key);
}

Result<std::string> generate_rsa(GeneratedKey* out) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), kRsaGeneratedBits) != 1 ||
      EVP_PKEY_generate(ctx.get(), &raw) != 1 || !raw)
    return Status::internal("OpenSSL could not generate an RSA key");
  Pkey key(raw);
  Secret pem, der;
  if (Status s = encode(key.get(), OSSL_KEYMGMT_SELECT_KEYPAIR, "PEM", "type-specific", &pem.bytes);
      !s.ok())
    return s;
  if (Status s =
          encode(key.get(), OSSL_KEYMGMT_SELECT_KEYPAIR, "DER", "PrivateKeyInfo", &der.bytes);
      !s.ok())
    return s;
  auto n = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N);
  if (!n.ok()) return n.status();
  auto e = bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E);
  if (!e.ok()) return e.status();
  out->public_key = {SshKeyType::kRsa, rsa_blob(e->get(), n->get()),
                     static_cast<unsigned>(BN_num_bits(n->get()))};
  out->fingerprint = colon_hex(digest(der.bytes, EVP_sha1()));
  return std::string(pem.bytes);
}

// OpenSSH's private key format (PROTOCOL.key), unencrypted: the magic, cipher and kdf
// "none", one public key, and the private section (two equal check words, the key, its
// comment, padding 1, 2, 3, ... to the 8-byte block), all base64 in lines of 70.
Result<std::string> generate_ed25519(std::string_view comment, GeneratedKey* out) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "ED25519", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_generate(ctx.get(), &raw) != 1 ||
      !raw)
    return Status::internal("OpenSSL could not generate an Ed25519 key");
  Pkey key(raw);
  std::string pub(kEd25519Bytes, '\0');
  Secret seed;
  seed.bytes.assign(kEd25519Bytes, '\0');
  size_t pub_len = pub.size(), seed_len = seed.bytes.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(pub.data()),
                                  &pub_len) != 1 ||
      EVP_PKEY_get_raw_private_key(key.get(), reinterpret_cast<unsigned char*>(seed.bytes.data()),
                                   &seed_len) != 1 ||
      pub_len != kEd25519Bytes || seed_len != kEd25519Bytes)
    return Status::internal("OpenSSL could not export an Ed25519 key");
  const std::string blob = ed25519_blob(pub);
  uint32_t check = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&check), sizeof check) != 1)
    return Status::internal("OpenSSL's random generator failed");
  Secret priv, file, text;
  put_u32(priv.bytes, check);
  put_u32(priv.bytes, check);
  put_string(priv.bytes, kEd25519Name);
  put_string(priv.bytes, pub);
  {
    Secret both;  // OpenSSH keeps the seed followed by the public key
    both.bytes = seed.bytes + pub;
    put_string(priv.bytes, both.bytes);
  }
  put_string(priv.bytes, comment);
  for (char pad = 1; priv.bytes.size() % 8 != 0; ++pad) priv.bytes += pad;
  file.bytes.append("openssh-key-v1", sizeof "openssh-key-v1");  // with its NUL
  put_string(file.bytes, "none");
  put_string(file.bytes, "none");
  put_string(file.bytes, "");
  put_u32(file.bytes, 1);
  put_string(file.bytes, blob);
  put_string(file.bytes, priv.bytes);
  text.bytes = base64_encode(file.bytes);
  std::string pem = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
  for (size_t at = 0; at < text.bytes.size(); at += 70)
    pem.append(text.bytes, at, 70).push_back('\n');
  pem += "-----END OPENSSH PRIVATE KEY-----\n";
  out->public_key = {SshKeyType::kEd25519, blob, 256};
  out->fingerprint = sha256_base64_fingerprint(blob);
  return pem;
}

}  // namespace

std::string_view key_type_name(SshKeyType t) {
  return t == SshKeyType::kEd25519 ? "ed25519" : "rsa";
}

std::string colon_hex(std::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i) out += ':';
    out += fmt::format("{:02x}", static_cast<unsigned char>(bytes[i]));
  }
  return out;
}

std::string sha256_base64_fingerprint(std::string_view blob) {
  return base64_encode(digest(blob, EVP_sha256()));
}

Result<GeneratedKey> generate_ssh_key(SshKeyType type, std::string_view comment) {
  GeneratedKey out;
  auto pem = type == SshKeyType::kRsa ? generate_rsa(&out) : generate_ed25519(comment, &out);
  if (!pem.ok()) return pem.status();
  out.private_key = std::move(*pem);
  return out;
}

Result<SshPublicKey> parse_ssh_public_blob(std::string_view blob) {
  Reader r(blob);
  std::string_view name;
  if (!r.string(&name)) return bad_key("the key data is truncated");
  if (name == kEd25519Name) {
    std::string_view pub;
    if (!r.string(&pub) || !r.done() || pub.size() != kEd25519Bytes)
      return bad_key("an ssh-ed25519 key holds exactly 32 bytes");
    return SshPublicKey{SshKeyType::kEd25519, std::string(blob), 256};
  }
  if (name != kRsaName) return bad_key("only ssh-rsa and ssh-ed25519 keys are supported");
  std::string_view e_bytes, n_bytes;
  if (!r.string(&e_bytes) || !r.string(&n_bytes) || !r.done())
    return bad_key("an ssh-rsa key holds exactly two numbers, e and n");
  if (n_bytes.size() > kRsaMaxBits / 8 + 1 || e_bytes.size() > 8)
    return bad_key(fmt::format("RSA keys are at most {} bits, exponents at most 64", kRsaMaxBits));
  auto e = positive_mpint(e_bytes, "exponent");
  if (!e.ok()) return e.status();
  auto n = positive_mpint(n_bytes, "modulus");
  if (!n.ok()) return n.status();
  const int bits = BN_num_bits(n->get());
  if (bits < static_cast<int>(kRsaMinBits) || bits > static_cast<int>(kRsaMaxBits))
    return bad_key(fmt::format("the RSA key has {} bits; {} to {} are supported", bits, kRsaMinBits,
                               kRsaMaxBits));
  auto key = rsa_public_pkey(e->get(), n->get());
  if (!key.ok()) return key.status();
  PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, key->get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1)
    return bad_key("OpenSSL's check of the RSA public key failed");
  return SshPublicKey{SshKeyType::kRsa, std::string(blob), static_cast<unsigned>(bits)};
}

Result<SshPublicKey> parse_openssh_public_key(std::string_view line) {
  if (line.size() > kMaxPublicKeyLine)
    return bad_key(fmt::format("more than {} bytes", kMaxPublicKeyLine));
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.rfind("---- BEGIN SSH2 PUBLIC KEY", 0) == 0)
    return bad_key(
        "RFC 4716 (SSH2) public keys are not supported, only the OpenSSH one-line form "
        "(ssh-keygen -i -f KEY converts one)");
  if (line.rfind("-----BEGIN", 0) == 0)
    return bad_key("PEM keys are not supported, only the OpenSSH one-line form");
  for (char c : line) {
    if (c == '\n' || c == '\r' || c == '\0') return bad_key("one key on one line is expected");
  }
  const size_t sp = line.find(' ');
  const std::string_view type = line.substr(0, sp);
  if (type != kRsaName && type != kEd25519Name)
    return bad_key("the line must start with ssh-rsa or ssh-ed25519");
  if (sp == std::string_view::npos) return bad_key("the key data is missing");
  std::string_view data = line.substr(sp + 1);
  data = data.substr(0, data.find(' '));  // the rest is a comment
  auto blob = base64_decode(data);
  if (!blob || blob->empty()) return bad_key("the key data is not base64");
  auto key = parse_ssh_public_blob(*blob);
  if (!key.ok()) return key.status();
  if (key_type_name(key->type) != (type == kRsaName ? "rsa" : "ed25519"))
    return bad_key("the key data is of another type than the line says");
  return key;
}

std::string openssh_public_line(const SshPublicKey& key, std::string_view comment) {
  std::string line =
      key.type == SshKeyType::kRsa ? std::string(kRsaName) : std::string(kEd25519Name);
  line += ' ';
  line += base64_encode(key.blob);
  if (!comment.empty()) line.append(" ").append(comment);
  return line;
}

Result<std::string> imported_key_fingerprint(const SshPublicKey& key) {
  if (key.type == SshKeyType::kEd25519) return sha256_base64_fingerprint(key.blob);
  Reader r(key.blob);
  std::string_view name, e_bytes, n_bytes;
  if (!r.string(&name) || !r.string(&e_bytes) || !r.string(&n_bytes))
    return bad_key("the key data is truncated");
  auto e = positive_mpint(e_bytes, "exponent");
  if (!e.ok()) return e.status();
  auto n = positive_mpint(n_bytes, "modulus");
  if (!n.ok()) return n.status();
  auto pkey = rsa_public_pkey(e->get(), n->get());
  if (!pkey.ok()) return pkey.status();
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey->get(), &der);
  if (len <= 0 || !der) return Status::internal("OpenSSL could not encode a public key");
  std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return colon_hex(digest(spki, EVP_md5()));
}

}  // namespace nimbus::cloud
