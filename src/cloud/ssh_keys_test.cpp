// SSH keys: generation, the private key formats (read back by OpenSSL and by OpenSSH's
// ssh-keygen when installed), EC2's fingerprints against independent tools, and refusals
// of bad public keys.
#include "cloud/ssh_keys.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cloud/base64.h"

namespace nimbus::cloud {
namespace {

// Keys made by ssh-keygen 9 (OpenSSH) and their fingerprints as computed by other tools:
//   ssh-keygen -e -m PKCS8 -f rsa.pub | openssl pkey -pubin -outform DER | openssl md5 -c
//   ssh-keygen -l -f ed.pub (SHA256:..., unpadded)
constexpr const char* kRsaLine =
    "ssh-rsa "
    "AAAAB3NzaC1yc2EAAAADAQABAAABAQCXtmDoRo+xgGsm/+pBZmkHuE0Btk5+rGl5s1QFvD9WdZ38G7uJ7Mbob92oPBwTh"
    "jvIW00Nw0cwr6R02984uug6SB+l0MdxCzqYhK+OKYNES4VEslKvi6OHUC6o+5eamF/0aKH8y8qoipg5vx/z8Tyx6lyLNrP"
    "mj4C+nSeCmBy73j1yKp2KKXnTiA3yzIu1r7SaDuymmPtdb6qLF6gsnk7Qma2YCVwHljrEcaR++5PE5Y+/x/i3i5L4koaSy"
    "Y7VhX72N/jcH7PH3hnCiuNUegOB/SyUC6W13CmmFUmHz/pdp0adLjOnC4snLmI5D5tzy7Aooc9KdyTAu9eYZ4059Aev "
    "fixed rsa";
constexpr const char* kRsaImportedFingerprint = "0f:3f:bf:29:27:d5:31:44:75:2b:c9:c3:a6:08:f5:22";
constexpr const char* kEdLine =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDZvKa0ft/UHoIPBvI+1ja1zq1+VhFBTTrv6BICFeKb1 fixed ed";
constexpr const char* kEdFingerprint = "tsJHEri8rlLimmUHabJWvXut+Lt8MTXYMeij4DL+ip0=";
constexpr const char* kRsa1024Line =
    "ssh-rsa "
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDBFFEpSKEv+m+p15xpbUSw7pCanfstpC2Ls8C1TJYaD6dH21wcEMf4iNiPGsOXF"
    "yf+4vIzsN9EbEQOOeIr/RyC+7mAmZQP79NrZdN7lbBGkpoLzPGremSH/WDbPTbkKCNMD9zE67R032mTiCLCHk6zK3PIRaX"
    "jx9PacVEYR21DVQ== small";
constexpr const char* kEcdsaLine =
    "ecdsa-sha2-nistp256 "
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHLnUXAb7AFxphZtjPKwi0y/"
    "phaq6gocv3lGxvC9ZS2"
    "cEHX7uvFah4idqtU2FUTSSt6R+woT7HiDi240Dz0eQxc= root@vm";

bool have(const char* path) { return access(path, X_OK) == 0; }

// Runs a shell command; its stdout (empty on failure, with `ok` false).
std::string run(const std::string& cmd, bool* ok = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    if (ok) *ok = false;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (ok) *ok = rc == 0;
  return out;
}

// A private key in a 0600 file of its own (ssh-keygen refuses readable ones).
class KeyFile {
 public:
  explicit KeyFile(const std::string& text) {
    char dir[] = "/tmp/nimbus-ssh-keys-test-XXXXXX";
    if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp");
    dir_ = dir;
    path_ = dir_ + "/key";
    std::ofstream(path_) << text;
    chmod(path_.c_str(), 0600);
  }
  ~KeyFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The first two fields of a public key line (type and data, without the comment).
std::string key_part(const std::string& line) {
  const size_t sp = line.find(' ');
  return line.substr(0, line.find(' ', sp + 1));
}

TEST(SshKeys, ImportedFingerprintsAreEc2s) {
  auto rsa = parse_openssh_public_key(kRsaLine);
  ASSERT_TRUE(rsa.ok()) << rsa.message();
  EXPECT_EQ(rsa->type, SshKeyType::kRsa);
  EXPECT_EQ(rsa->bits, 2048u);
  auto fp = imported_key_fingerprint(*rsa);
  ASSERT_TRUE(fp.ok()) << fp.message();
  EXPECT_EQ(*fp, kRsaImportedFingerprint);

  auto ed = parse_openssh_public_key(std::string(kEdLine) + "\n");
  ASSERT_TRUE(ed.ok()) << ed.message();
  EXPECT_EQ(ed->type, SshKeyType::kEd25519);
  auto edfp = imported_key_fingerprint(*ed);
  ASSERT_TRUE(edfp.ok());
  EXPECT_EQ(*edfp, kEdFingerprint);

  // The line is rebuilt from the blob with the comment asked for.
  EXPECT_EQ(openssh_public_line(*ed, "my key"), key_part(kEdLine) + " my key");
  EXPECT_EQ(openssh_public_line(*rsa, ""), key_part(kRsaLine));
}

TEST(SshKeys, GeneratedRsaIsPkcs1PemWithEc2sFingerprint) {
  auto k = generate_ssh_key(SshKeyType::kRsa, "ignored");
  ASSERT_TRUE(k.ok()) << k.message();
  EXPECT_EQ(k->private_key.rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0), 0u) << k->private_key;
  EXPECT_NE(k->private_key.find("-----END RSA PRIVATE KEY-----"), std::string::npos);
  EXPECT_EQ(k->public_key.bits, 2048u);
  // The fingerprint is SHA-1 of 20 bytes: 59 characters of colon hex.
  EXPECT_EQ(k->fingerprint.size(), 59u) << k->fingerprint;

  // OpenSSL reads the PEM back, and the public half is the blob's.
  BIO* bio = BIO_new_mem_buf(k->private_key.data(), static_cast<int>(k->private_key.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_get_bits(key), 2048);
  EVP_PKEY_free(key);
  auto parsed = parse_ssh_public_blob(k->public_key.blob);
  ASSERT_TRUE(parsed.ok()) << parsed.message();

  KeyFile file(k->private_key);
  if (have("/usr/bin/openssl")) {
    // EC2's guide: openssl pkcs8 -topk8 -nocrypt -outform DER | openssl sha1 -c
    bool ok = false;
    std::string out =
        run(fmt::format("/usr/bin/openssl pkcs8 -topk8 -nocrypt -in {} -outform DER | "
                        "/usr/bin/openssl sha1 -c",
                        file.path()),
            &ok);
    ASSERT_TRUE(ok);
    EXPECT_NE(out.find("= " + k->fingerprint), std::string::npos) << out << k->fingerprint;
  }
  if (!have("/usr/bin/ssh-keygen")) GTEST_SKIP() << "no /usr/bin/ssh-keygen";
  bool ok = false;
  std::string pub = run("/usr/bin/ssh-keygen -y -f " + file.path() + " 2>&1", &ok);
  ASSERT_TRUE(ok) << pub;
  EXPECT_EQ(key_part(trim(pub)), openssh_public_line(k->public_key, ""));
}

TEST(SshKeys, GeneratedEd25519IsOpenSshFormat) {
  auto k = generate_ssh_key(SshKeyType::kEd25519, "my-pair");
  ASSERT_TRUE(k.ok()) << k.message();
  const std::string& pem = k->private_key;
  const std::string begin = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
  const std::string end = "-----END OPENSSH PRIVATE KEY-----\n";
  ASSERT_EQ(pem.rfind(begin, 0), 0u) << pem;
  ASSERT_GE(pem.size(), begin.size() + end.size());
  EXPECT_EQ(pem.substr(pem.size() - end.size()), end);
  std::string body = pem.substr(begin.size(), pem.size() - begin.size() - end.size()), joined;
  size_t line_start = 0;
  while (line_start < body.size()) {
    const size_t nl = body.find('\n', line_start);
    ASSERT_NE(nl, std::string::npos);
    EXPECT_LE(nl - line_start, 70u);
    joined += body.substr(line_start, nl - line_start);
    line_start = nl + 1;
  }
  auto file = base64_decode(joined);
  ASSERT_TRUE(file.has_value());
  ASSERT_EQ(file->rfind(std::string("openssh-key-v1\0", 15), 0), 0u);
  // The public key in the file is the one returned; the comment is the pair's name.
  EXPECT_NE(file->find(k->public_key.blob), std::string::npos);
  EXPECT_NE(file->find("my-pair"), std::string::npos);
  EXPECT_EQ(k->fingerprint, sha256_base64_fingerprint(k->public_key.blob));
  EXPECT_EQ(k->fingerprint.size(), 44u);
  EXPECT_EQ(k->fingerprint.back(), '=');
  // Two keys are two keys.
  auto other = generate_ssh_key(SshKeyType::kEd25519, "my-pair");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->public_key.blob, k->public_key.blob);

  if (!have("/usr/bin/ssh-keygen")) GTEST_SKIP() << "no /usr/bin/ssh-keygen";
  KeyFile key(pem);
  bool ok = false;
  std::string pub = run("/usr/bin/ssh-keygen -y -f " + key.path() + " 2>&1", &ok);
  ASSERT_TRUE(ok) << pub;
  EXPECT_EQ(trim(pub), openssh_public_line(k->public_key, "my-pair"));
  // ssh-keygen's fingerprint is EC2's without the padding.
  std::string fp = run("/usr/bin/ssh-keygen -l -f " + key.path() + " 2>&1", &ok);
  ASSERT_TRUE(ok) << fp;
  std::string unpadded = k->fingerprint;
  unpadded.pop_back();
  EXPECT_NE(fp.find("SHA256:" + unpadded + " "), std::string::npos) << fp;
}

// A blob with the given fields (for keys no tool would make).
std::string blob_of(std::initializer_list<std::string> fields) {
  std::string out;
  for (const auto& f : fields) {
    const uint32_t n = static_cast<uint32_t>(f.size());
    out += static_cast<char>(n >> 24);
    out += static_cast<char>(n >> 16);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n);
    out += f;
  }
  return out;
}

TEST(SshKeys, BadPublicKeysAreRefusedWithAReason) {
  auto refused = [](const std::string& line) {
    auto r = parse_openssh_public_key(line);
    EXPECT_FALSE(r.ok()) << line.substr(0, 80);
    if (r.ok()) return std::string();
    EXPECT_EQ(r.code(), Code::kInvalidArgument);
    return r.message();
  };
  EXPECT_NE(refused(kRsa1024Line).find("1024 bits"), std::string::npos);
  EXPECT_NE(refused(kEcdsaLine).find("ssh-rsa or ssh-ed25519"), std::string::npos);
  EXPECT_NE(refused("---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----\n")
                .find("RFC 4716"),
            std::string::npos);
  EXPECT_NE(refused("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n").find("PEM"),
            std::string::npos);
  refused("");
  refused("ssh-ed25519");
  refused("ssh-ed25519 ");
  refused("ssh-ed25519 !!!notbase64 c");
  refused(std::string("command=\"rm -rf /\" ") + kEdLine);  // authorized_keys options
  refused(std::string(kEdLine) + "\nssh-ed25519 AAAA second");
  refused(std::string(kEdLine) + std::string("\0 x", 3));
  // The line says rsa, the data is ed25519's (and the other way round).
  refused("ssh-rsa " + key_part(kEdLine).substr(12));
  refused("ssh-ed25519 " + key_part(kRsaLine).substr(8));
  refused(std::string(kMaxPublicKeyLine + 1, 'A'));

  auto blob_refused = [&](const std::string& blob) {
    return refused("ssh-ed25519 " + base64_encode(blob));
  };
  const std::string pub32(32, 'x');
  EXPECT_TRUE(parse_ssh_public_blob(blob_of({"ssh-ed25519", pub32})).ok());
  blob_refused(blob_of({"ssh-ed25519", std::string(31, 'x')}));
  blob_refused(blob_of({"ssh-ed25519", pub32}) + "x");  // trailing bytes
  blob_refused(blob_of({"ssh-ed25519"}) + std::string("\xff\xff\xff\xff", 4) + "x");  // huge length
  blob_refused(blob_of({"ssh-ed25519"}).substr(0, 7));                                // truncated
  blob_refused(blob_of({"ssh-dss", pub32}));
  blob_refused("");

  // RSA numbers: negative, padded, even modulus, exponent 1 or even, too large.
  std::string n(256, '\x5b');
  n.back() = '\x01';  // odd, 2047 bits (0x5b: top bit clear)
  n[0] = '\xc7';      // top bit set: 2048 bits, needs a zero byte as an mpint
  const std::string n_mpint = std::string(1, '\0') + n;
  const std::string e65537("\x01\x00\x01", 3);
  auto rsa_blob = [](const std::string& e, const std::string& n) {
    return blob_of({"ssh-rsa", e, n});
  };
  auto rsa_refused = [&](const std::string& blob) {
    return refused("ssh-rsa " + base64_encode(blob));
  };
  rsa_refused(rsa_blob(e65537, n));                                  // n negative (no zero byte)
  rsa_refused(rsa_blob(e65537, std::string(2, '\0') + n));           // not minimal
  rsa_refused(rsa_blob(std::string("\0\x01\x00\x01", 4), n_mpint));  // e not minimal
  rsa_refused(rsa_blob("", n_mpint));                                // e empty
  std::string even = n_mpint;
  even.back() = '\x02';
  rsa_refused(rsa_blob(e65537, even));
  rsa_refused(rsa_blob("\x01", n_mpint));  // e = 1
  rsa_refused(rsa_blob(e65537, std::string(kRsaMaxBits / 8 + 2, '\x11')));
  rsa_refused(rsa_blob(e65537, n_mpint) + "z");  // trailing bytes
}

}  // namespace
}  // namespace nimbus::cloud
