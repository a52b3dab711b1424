// The key pair actions of the EC2 Query API with the form bodies botocore sends (checked
// with botocore's own serializer: KeyName, KeyType, TagSpecification.N.*, PublicKeyMaterial
// as base64, KeyName.N, KeyPairId.N, IncludePublicKey=true, Filter.N.*), read back by the
// element names botocore reads (keyName, keyFingerprint, keyMaterial, keyPairId, tagSet,
// keySet/item, keyType, publicKey, createTime).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cloud/base64.h"
#include "cloud/cloud_server.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/ec2_api.h"
#include "cloud/ec2_form_request.h"
#include "cloud/ec2_xml_test_util.h"
#include "cloud/ssh_keys.h"

namespace nimbus::cloud {
namespace {

constexpr const char* kEdLine =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDZvKa0ft/UHoIPBvI+1ja1zq1+VhFBTTrv6BICFeKb1 fixed ed";
constexpr const char* kEdFingerprint = "tsJHEri8rlLimmUHabJWvXut+Lt8MTXYMeij4DL+ip0=";

using Node = XmlNode;

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

class Ec2KeyPairsApiTest : public ::testing::Test {
 protected:
  Ec2KeyPairsApiTest() : api_(bed_.cloud(), bed_.driver(), {}) { bed_.add_hosts(1); }

  http::Reply send(const std::string& body) {
    return route_cloud_request(bed_.cloud(), api_, form_request("Version=2016-11-15&" + body));
  }
  Node ok(const std::string& body) {
    http::Reply r = send(body);
    EXPECT_EQ(r.status, 200) << body << "\n" << r.body;
    return parse_xml(r.body);
  }
  // The error code of a refused call (EC2's error shape checked).
  std::string error(const std::string& body) {
    http::Reply r = send(body);
    EXPECT_EQ(r.status, 400) << body << "\n" << r.body;
    Node doc = parse_xml(r.body);
    EXPECT_EQ(doc.name, "Response") << r.body;
    EXPECT_FALSE(doc.at("Errors/Error/Message").empty()) << r.body;
    return doc.at("Errors/Error/Code");
  }
  std::vector<std::string> described(const std::string& extra) {
    Node d = ok("Action=DescribeKeyPairs" + extra);
    EXPECT_EQ(d.name, "DescribeKeyPairsResponse");
    std::vector<std::string> names;
    if (const Node* set = d.child("keySet")) {
      for (const Node* item : set->all("item")) names.push_back(item->at("keyName"));
    }
    return names;
  }

  CloudTestBed bed_;
  Ec2Api api_;
};

TEST_F(Ec2KeyPairsApiTest, CreateDescribeDelete) {
  Node c =
      ok("Action=CreateKeyPair&KeyName=web&KeyType=ed25519"
         "&TagSpecification.1.ResourceType=key-pair&TagSpecification.1.Tag.1.Key=team"
         "&TagSpecification.1.Tag.1.Value=a"
         "&TagSpecification.2.ResourceType=instance&TagSpecification.2.Tag.1.Key=other"
         "&TagSpecification.2.Tag.1.Value=b");
  EXPECT_EQ(c.name, "CreateKeyPairResponse");
  EXPECT_FALSE(c.at("requestId").empty());
  EXPECT_EQ(c.at("keyName"), "web");
  const std::string id = c.at("keyPairId");
  EXPECT_TRUE(is_id(id, "key")) << id;
  const std::string material = c.at("keyMaterial");
  EXPECT_EQ(material.rfind("-----BEGIN OPENSSH PRIVATE KEY-----\n", 0), 0u) << material;
  EXPECT_EQ(c.at("tagSet/item/key"), "team");
  EXPECT_EQ(c.child("tagSet")->all("item").size(), 1u);  // the instance's tags are not its
  const std::string fingerprint = c.at("keyFingerprint");
  EXPECT_EQ(fingerprint.size(), 44u);

  Node r = ok("Action=CreateKeyPair&KeyName=legacy");  // rsa by default
  EXPECT_EQ(r.at("keyMaterial").rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0), 0u);

  Node d = ok("Action=DescribeKeyPairs&KeyName.1=web&IncludePublicKey=true");
  const Node* item = d.child("keySet")->child("item");
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item->at("keyPairId"), id);
  EXPECT_EQ(item->at("keyFingerprint"), fingerprint);
  EXPECT_EQ(item->at("keyType"), "ed25519");
  EXPECT_EQ(item->at("tagSet/item/value"), "a");
  EXPECT_FALSE(item->at("createTime").empty());
  const std::string pub = item->at("publicKey");
  EXPECT_EQ(pub.rfind("ssh-ed25519 AAAA", 0), 0u) << pub;
  EXPECT_EQ(pub.substr(pub.size() - 4), " web");
  // The public key is the private key's: the fingerprint computed from it agrees.
  auto parsed = parse_openssh_public_key(pub);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(sha256_base64_fingerprint(parsed->blob), fingerprint);
  // Without IncludePublicKey, no public key.
  EXPECT_TRUE(ok("Action=DescribeKeyPairs&KeyName.1=web")
                  .child("keySet")
                  ->child("item")
                  ->child("publicKey") == nullptr);

  EXPECT_EQ(described(""), (std::vector<std::string>{"legacy", "web"}));
  EXPECT_EQ(described("&KeyPairId.1=" + id), std::vector<std::string>{"web"});
  EXPECT_EQ(described("&Filter.1.Name=key-name&Filter.1.Value.1=w*"),
            std::vector<std::string>{"web"});
  EXPECT_EQ(described("&Filter.1.Name=fingerprint&Filter.1.Value.1=" + url_encode(fingerprint)),
            std::vector<std::string>{"web"});
  EXPECT_EQ(described("&Filter.1.Name=key-pair-id&Filter.1.Value.1=" + id),
            std::vector<std::string>{"web"});
  EXPECT_EQ(described("&Filter.1.Name=tag:team&Filter.1.Value.1=a"),
            std::vector<std::string>{"web"});
  EXPECT_EQ(described("&Filter.1.Name=tag:team&Filter.1.Value.1=b"), std::vector<std::string>{});

  EXPECT_EQ(error("Action=DescribeKeyPairs&KeyName.1=nope"), "InvalidKeyPair.NotFound");
  EXPECT_EQ(error("Action=DescribeKeyPairs&KeyPairId.1=key-0123456789abcdef0"),
            "InvalidKeyPair.NotFound");
  EXPECT_EQ(error("Action=DescribeKeyPairs&Filter.1.Name=color&Filter.1.Value.1=x"),
            "InvalidParameterValue");
  EXPECT_EQ(error("Action=DescribeKeyPairs&IncludePublicKey=maybe"), "InvalidParameterValue");

  Node del = ok("Action=DeleteKeyPair&KeyPairId=" + id);
  EXPECT_EQ(del.name, "DeleteKeyPairResponse");
  EXPECT_EQ(del.at("return"), "true");
  EXPECT_EQ(described(""), std::vector<std::string>{"legacy"});
  // Deleting a pair that is not there succeeds, as on EC2.
  EXPECT_EQ(ok("Action=DeleteKeyPair&KeyName=web").at("return"), "true");
  ok("Action=DeleteKeyPair&KeyName=legacy");
  EXPECT_TRUE(described("").empty());
  EXPECT_EQ(error("Action=DeleteKeyPair"), "MissingParameter");
}

TEST_F(Ec2KeyPairsApiTest, ImportAndItsRefusals) {
  Node i = ok("Action=ImportKeyPair&KeyName=laptop&PublicKeyMaterial=" +
              url_encode(base64_encode(std::string(kEdLine) + "\n")) +
              "&TagSpecification.1.ResourceType=key-pair&TagSpecification.1.Tag.1.Key=k"
              "&TagSpecification.1.Tag.1.Value=v");
  EXPECT_EQ(i.name, "ImportKeyPairResponse");
  EXPECT_EQ(i.at("keyName"), "laptop");
  EXPECT_EQ(i.at("keyFingerprint"), kEdFingerprint);
  EXPECT_TRUE(is_id(i.at("keyPairId"), "key"));
  EXPECT_EQ(i.at("tagSet/item/key"), "k");
  EXPECT_TRUE(i.child("keyMaterial") == nullptr);
  EXPECT_EQ(described("&Filter.1.Name=fingerprint&Filter.1.Value.1=" + url_encode(kEdFingerprint)),
            std::vector<std::string>{"laptop"});

  const auto before = bed_.store_dump();
  const std::string material = "&PublicKeyMaterial=" + url_encode(base64_encode(kEdLine));
  EXPECT_EQ(error("Action=ImportKeyPair&KeyName=laptop" + material), "InvalidKeyPair.Duplicate");
  EXPECT_EQ(error("Action=ImportKeyPair" + material), "MissingParameter");
  EXPECT_EQ(error("Action=ImportKeyPair&KeyName=x"), "MissingParameter");
  EXPECT_EQ(error("Action=ImportKeyPair&KeyName=x&PublicKeyMaterial=%21%21%21"),
            "InvalidKeyPair.Format");
  EXPECT_EQ(error("Action=ImportKeyPair&KeyName=x&PublicKeyMaterial=" +
                  url_encode(base64_encode("ssh-dss AAAAB3NzaC1kc3M= x"))),
            "InvalidKeyPair.Format");
  EXPECT_EQ(error("Action=ImportKeyPair&KeyName=x&PublicKeyMaterial=" +
                  url_encode(base64_encode("---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n"))),
            "InvalidKeyPair.Format");
  EXPECT_EQ(error("Action=ImportKeyPair&KeyName=" + std::string(256, 'n') + material),
            "InvalidParameterValue");
  EXPECT_EQ(error("Action=CreateKeyPair&KeyName=laptop"), "InvalidKeyPair.Duplicate");
  EXPECT_EQ(error("Action=CreateKeyPair"), "MissingParameter");
  EXPECT_EQ(error("Action=CreateKeyPair&KeyName=x&KeyType=dsa"), "InvalidParameterValue");
  EXPECT_EQ(error("Action=CreateKeyPair&KeyName=x&KeyFormat=ppk"), "InvalidParameterValue");
  EXPECT_EQ(error("Action=CreateKeyPair&KeyName=caf%C3%A9"), "InvalidParameterValue");
  EXPECT_EQ(bed_.store_dump(), before);
}

TEST_F(Ec2KeyPairsApiTest, RunInstancesWithAKeyName) {
  const std::string run = "Action=RunInstances&ImageId=" + bed_.image_id() +
                          "&InstanceType=n1.tiny&MinCount=1&MaxCount=1";
  const auto before = bed_.store_dump();
  EXPECT_EQ(error(run + "&KeyName=nope"), "InvalidKeyPair.NotFound");
  EXPECT_EQ(bed_.store_dump(), before);
  ok("Action=ImportKeyPair&KeyName=laptop&PublicKeyMaterial=" + url_encode(base64_encode(kEdLine)));
  Node r = ok(run + "&KeyName=laptop");
  EXPECT_EQ(r.at("instancesSet/item/keyName"), "laptop");
  const std::string id = r.at("instancesSet/item/instanceId");
  ok("Action=DeleteKeyPair&KeyName=laptop");
  auto inst = bed_.cloud().instance(id);
  ASSERT_TRUE(inst.ok());
  const std::string line(kEdLine);
  EXPECT_EQ(inst->public_key, line.substr(0, line.rfind(" fixed ed")) + " laptop");
  Node d = ok("Action=DescribeInstances&Filter.1.Name=key-name&Filter.1.Value.1=laptop");
  EXPECT_EQ(d.at("reservationSet/item/instancesSet/item/instanceId"), id);
}

}  // namespace
}  // namespace nimbus::cloud
