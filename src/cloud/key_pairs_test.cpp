// Key pairs in the control plane: create, import, describe, delete over a real (in-memory)
// store; only public keys stored; RunInstances with a key name.
#include "cloud/key_pairs.h"

#include <gtest/gtest.h>

#include "cloud/cloud_test_fixture.h"
#include "cloud/ssh_keys.h"

namespace nimbus::cloud {
namespace {

constexpr const char* kRsaLine =
    "ssh-rsa "
    "AAAAB3NzaC1yc2EAAAADAQABAAABAQCXtmDoRo+xgGsm/+pBZmkHuE0Btk5+rGl5s1QFvD9WdZ38G7uJ7Mbob92oPBwTh"
    "jvIW00Nw0cwr6R02984uug6SB+l0MdxCzqYhK+OKYNES4VEslKvi6OHUC6o+5eamF/0aKH8y8qoipg5vx/z8Tyx6lyLNrP"
    "mj4C+nSeCmBy73j1yKp2KKXnTiA3yzIu1r7SaDuymmPtdb6qLF6gsnk7Qma2YCVwHljrEcaR++5PE5Y+/x/i3i5L4koaSy"
    "Y7VhX72N/jcH7PH3hnCiuNUegOB/SyUC6W13CmmFUmHz/pdp0adLjOnC4snLmI5D5tzy7Aooc9KdyTAu9eYZ4059Aev "
    "owner@laptop";
constexpr const char* kEdLine =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDZvKa0ft/UHoIPBvI+1ja1zq1+VhFBTTrv6BICFeKb1 fixed ed";

std::string private_body(const std::string& pem) {
  // The base64 between the armour lines: what must never reach the store.
  const size_t start = pem.find('\n') + 1;
  return pem.substr(start, pem.find("-----END") - start);
}

class KeyPairsTest : public ::testing::Test {
 protected:
  CloudTestBed bed_;
  Cloud& cloud() { return bed_.cloud(); }
};

TEST_F(KeyPairsTest, CreateStoresOnlyThePublicKey) {
  for (const std::string type : {"rsa", "ed25519", ""}) {
    const std::string name = "pair-" + (type.empty() ? std::string("default") : type);
    auto k = cloud().create_key_pair(name, type, "", {{"team", "a"}});
    ASSERT_TRUE(k.ok()) << k.error().message;
    EXPECT_TRUE(is_id(k->record.id, "key")) << k->record.id;
    EXPECT_EQ(k->record.type, type.empty() ? "rsa" : type);
    EXPECT_FALSE(k->record.imported);
    EXPECT_EQ(k->record.tags.at("team"), "a");
    // The stored public key is the generated one, with the pair's name as comment.
    auto parsed = parse_openssh_public_key(k->record.public_key);
    ASSERT_TRUE(parsed.ok()) << parsed.message();
    EXPECT_EQ(k->record.public_key.substr(k->record.public_key.rfind(' ') + 1), name);
    if (k->record.type == "ed25519") {
      EXPECT_EQ(k->key_material.rfind("-----BEGIN OPENSSH PRIVATE KEY-----", 0), 0u);
      EXPECT_EQ(k->record.fingerprint, sha256_base64_fingerprint(parsed->blob));
    } else {
      EXPECT_EQ(k->key_material.rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);
      EXPECT_EQ(k->record.fingerprint.size(), 59u);  // SHA-1, colon hex
    }
    auto got = cloud().key_pair(name);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->id, k->record.id);
    EXPECT_EQ(got->fingerprint, k->record.fingerprint);
    EXPECT_EQ(got->public_key, k->record.public_key);
    EXPECT_FALSE(got->create_time.empty());
    // Nothing of the private key is in the store.
    const std::string body = private_body(k->key_material);
    ASSERT_GT(body.size(), 100u);
    for (const auto& line : bed_.store_dump()) {
      EXPECT_EQ(line.find("PRIVATE KEY"), std::string::npos) << line;
      for (size_t at = 0; at + 60 <= body.size(); at += 71)
        EXPECT_EQ(line.find(body.substr(at, 60)), std::string::npos) << line;
    }
  }
  auto all = cloud().key_pairs();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
}

TEST_F(KeyPairsTest, RefusalsChangeNothing) {
  ASSERT_TRUE(cloud().create_key_pair("taken", "ed25519", "pem", {}).ok());
  const auto before = bed_.store_dump();
  auto code = [](const auto& r) { return r.ok() ? std::string("ok") : r.error().code; };
  EXPECT_EQ(code(cloud().create_key_pair("taken", "rsa", "", {})), "InvalidKeyPair.Duplicate");
  EXPECT_EQ(code(cloud().import_key_pair("taken", kEdLine, {})), "InvalidKeyPair.Duplicate");
  EXPECT_EQ(code(cloud().create_key_pair("", "rsa", "", {})), "MissingParameter");
  EXPECT_EQ(code(cloud().create_key_pair(std::string(256, 'k'), "rsa", "", {})),
            "InvalidParameterValue");
  EXPECT_EQ(code(cloud().create_key_pair("caf\xc3\xa9", "rsa", "", {})), "InvalidParameterValue");
  EXPECT_EQ(code(cloud().create_key_pair("tab\there", "rsa", "", {})), "InvalidParameterValue");
  EXPECT_EQ(code(cloud().create_key_pair("x", "dsa", "", {})), "InvalidParameterValue");
  auto ppk = cloud().create_key_pair("x", "rsa", "ppk", {});
  ASSERT_FALSE(ppk.ok());
  EXPECT_EQ(ppk.error().code, "InvalidParameterValue");
  EXPECT_NE(ppk.error().message.find("ppk"), std::string::npos);
  EXPECT_EQ(code(cloud().create_key_pair("x", "rsa", "der", {})), "InvalidParameterValue");
  EXPECT_EQ(code(cloud().import_key_pair("x", "", {})), "MissingParameter");
  EXPECT_EQ(code(cloud().import_key_pair("x", "ssh-ed25519 AAAA", {})), "InvalidKeyPair.Format");
  EXPECT_EQ(code(cloud().import_key_pair("x", "not a key at all", {})), "InvalidKeyPair.Format");
  EXPECT_EQ(code(cloud().key_pair("nope")), "InvalidKeyPair.NotFound");
  EXPECT_EQ(code(cloud().delete_key_pair("", "")), "MissingParameter");
  EXPECT_EQ(bed_.store_dump(), before);
}

TEST_F(KeyPairsTest, ImportKeepsTheKeyWithEc2sFingerprint) {
  auto rsa = cloud().import_key_pair("laptop", std::string(kRsaLine) + "\n", {});
  ASSERT_TRUE(rsa.ok()) << rsa.error().message;
  EXPECT_TRUE(rsa->imported);
  EXPECT_EQ(rsa->type, "rsa");
  // MD5 of the DER public key (computed with openssl, see ssh_keys_test.cpp).
  EXPECT_EQ(rsa->fingerprint, "0f:3f:bf:29:27:d5:31:44:75:2b:c9:c3:a6:08:f5:22");
  const std::string line(kRsaLine);
  EXPECT_EQ(rsa->public_key, line.substr(0, line.rfind(' ')) + " laptop");
  auto ed = cloud().import_key_pair("ed", kEdLine, {});
  ASSERT_TRUE(ed.ok()) << ed.error().message;
  EXPECT_EQ(ed->type, "ed25519");
  EXPECT_EQ(ed->fingerprint, "tsJHEri8rlLimmUHabJWvXut+Lt8MTXYMeij4DL+ip0=");
}

TEST_F(KeyPairsTest, DeleteByNameOrIdAndMissingIsFine) {
  auto a = cloud().import_key_pair("a", kEdLine, {});
  auto b = cloud().import_key_pair("b", kRsaLine, {});
  ASSERT_TRUE(a.ok() && b.ok());
  auto gone = cloud().delete_key_pair("a", "");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(*gone, a->id);
  EXPECT_EQ(cloud().key_pair("a").error().code, "InvalidKeyPair.NotFound");
  const auto before = bed_.store_dump();
  auto again = cloud().delete_key_pair("a", "");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, "");
  auto unknown_id = cloud().delete_key_pair("", "key-0123456789abcdef0");
  ASSERT_TRUE(unknown_id.ok());
  EXPECT_EQ(*unknown_id, "");
  // A name and the id of another pair: not the pair meant, nothing deleted.
  ASSERT_TRUE(cloud().delete_key_pair("b", a->id).ok());
  EXPECT_EQ(bed_.store_dump(), before);
  auto by_id = cloud().delete_key_pair("", b->id);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(*by_id, b->id);
  EXPECT_TRUE(cloud().key_pairs()->empty());
  // The name is free again.
  EXPECT_TRUE(cloud().import_key_pair("a", kEdLine, {}).ok());
}

TEST_F(KeyPairsTest, RunInstancesNeedsAKnownKeyAndKeepsItsPublicKey) {
  bed_.add_hosts(1);
  RunRequest req = bed_.run_request();
  req.key_name = "missing";
  const auto before = bed_.store_dump();
  auto refused = cloud().run_instances(req);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "InvalidKeyPair.NotFound");
  EXPECT_NE(refused.error().message.find("missing"), std::string::npos);
  EXPECT_EQ(bed_.store_dump(), before);

  auto k = cloud().create_key_pair("login", "ed25519", "", {});
  ASSERT_TRUE(k.ok());
  req.key_name = "login";
  auto res = cloud().run_instances(req);
  ASSERT_TRUE(res.ok()) << res.error().message;
  const std::string id = res->instances.at(0).id;
  // Deleting the pair leaves the instance its key (EC2's metadata still serves it).
  ASSERT_TRUE(cloud().delete_key_pair("login", "").ok());
  auto inst = cloud().instance(id);
  ASSERT_TRUE(inst.ok());
  EXPECT_EQ(inst->key_name, "login");
  EXPECT_EQ(inst->public_key, k->record.public_key);
  // Without a key name, no key.
  req.key_name.clear();
  auto plain = cloud().run_instances(req);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->instances.at(0).public_key, "");
}

}  // namespace
}  // namespace nimbus::cloud
