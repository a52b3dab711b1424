#include "cloud/instance_metadata.h"

#include <gtest/gtest.h>

#include "config/metadata_config.h"

namespace nimbus::cloud {
namespace {

using nlohmann::json;

InstanceRecord instance() {
  InstanceRecord i;
  i.id = "i-0123456789abcdef0";
  i.reservation_id = "r-0abc";
  i.owner_id = "111122223333";
  i.image_id = "ami-0def";
  i.instance_type = "n1.tiny";
  i.zone = "nimbus-west-1a";
  i.launch_index = 2;
  i.launch_time = "2026-01-02T03:04:05.000Z";
  i.user_data = "IyEvYmluL3NoCmVjaG8gaGkK";
  return i;
}

MetadataContext context() {
  MetadataContext c;
  c.region = "nimbus-west-1";
  c.account_id = "000000000000";
  c.security_group_names = {"default", "web"};
  return c;
}

TEST(InstanceMetadata, EveryFieldInEc2sLayoutAndTheVmmAcceptsIt) {
  InstanceRecord i = instance();
  i.private_ip = "10.88.0.7";
  i.public_ip = "127.100.1.9";
  i.key_name = "my-key";
  i.public_key = "ssh-ed25519 AAAAC3Nza me@host";
  MetadataContext c = context();
  c.mac = "52:54:00:81:00:07";
  const json d = instance_metadata_data(i, c);
  ASSERT_TRUE(config::check_metadata_data(d).ok()) << config::check_metadata_data(d).message();
  const json& md = d["meta-data"];
  EXPECT_EQ(md["ami-id"], "ami-0def");
  EXPECT_EQ(md["ami-launch-index"], "2");
  EXPECT_EQ(md["instance-id"], i.id);
  EXPECT_EQ(md["instance-type"], "n1.tiny");
  EXPECT_EQ(md["reservation-id"], "r-0abc");
  EXPECT_EQ(md["local-ipv4"], "10.88.0.7");
  EXPECT_EQ(md["hostname"], "ip-10-88-0-7.nimbus-west-1.compute.internal");
  EXPECT_EQ(md["local-hostname"], md["hostname"]);
  EXPECT_EQ(md["public-ipv4"], "127.100.1.9");
  EXPECT_EQ(md["public-hostname"], "ec2-127-100-1-9.nimbus-west-1.compute.nimbus");
  EXPECT_EQ(md["mac"], "52:54:00:81:00:07");
  EXPECT_EQ(md["placement"]["availability-zone"], "nimbus-west-1a");
  EXPECT_EQ(md["placement"]["region"], "nimbus-west-1");
  EXPECT_EQ(md["security-groups"], "default\nweb");
  EXPECT_EQ(md["public-keys"]["0=my-key"]["openssh-key"], i.public_key);
  EXPECT_EQ(d["user-data"], i.user_data) << "base64: the VMM decodes it";
  const json doc = json::parse(d["dynamic"]["instance-identity"]["document"].get<std::string>());
  EXPECT_EQ(doc, json({{"accountId", "111122223333"},
                       {"architecture", "riscv64"},
                       {"availabilityZone", "nimbus-west-1a"},
                       {"imageId", "ami-0def"},
                       {"instanceId", i.id},
                       {"instanceType", "n1.tiny"},
                       {"pendingTime", "2026-01-02T03:04:05.000Z"},
                       {"privateIp", "10.88.0.7"},
                       {"region", "nimbus-west-1"},
                       {"version", "2017-09-30"}}));
  // The create's object: the data with EC2's default options, as the VM config takes it.
  const json m = instance_metadata(i, c);
  auto parsed = config::parse_metadata(m);
  ASSERT_TRUE(parsed.ok()) << parsed.message();
  EXPECT_EQ(parsed->data, d);
  EXPECT_EQ(parsed->options, config::MetadataOptions{});
}

TEST(InstanceMetadata, WhatIsNotKnownYetIsLeftOut) {
  InstanceRecord i = instance();
  i.user_data.clear();
  const json d = instance_metadata_data(i, context());
  ASSERT_TRUE(config::check_metadata_data(d).ok());
  for (const char* k : {"local-ipv4", "hostname", "local-hostname", "public-ipv4",
                        "public-hostname", "mac", "public-keys"}) {
    EXPECT_FALSE(d["meta-data"].contains(k)) << k;
  }
  EXPECT_FALSE(d.contains("user-data"));
  // A key name without its key (an older record): no public-keys either.
  i.key_name = "k";
  EXPECT_FALSE(instance_metadata_data(i, context())["meta-data"].contains("public-keys"));
}

TEST(InstanceMetadata, HostileValuesStillMakeAValidTree) {
  InstanceRecord i = instance();
  i.user_data = "not base64 at all!";  // the EC2 API takes UserData as it comes
  i.key_name = std::string("a/b\x01") + std::string(400, 'k');
  i.public_key = "ssh-rsa AAAA";
  const json d = instance_metadata_data(i, context());
  ASSERT_TRUE(config::check_metadata_data(d).ok()) << config::check_metadata_data(d).message();
  EXPECT_FALSE(d.contains("user-data"));
  ASSERT_EQ(d["meta-data"]["public-keys"].size(), 1u);
  const std::string entry = d["meta-data"]["public-keys"].begin().key();
  EXPECT_EQ(entry.substr(0, 6), "0=a_b_");
  EXPECT_LE(entry.size(), 255u);
}

TEST(InstanceMetadata, TheHashFollowsTheData) {
  InstanceRecord i = instance();
  const std::string before = metadata_hash(instance_metadata_data(i, context()));
  EXPECT_EQ(before, metadata_hash(instance_metadata_data(i, context())));
  EXPECT_EQ(before.size(), 16u);
  i.private_ip = "10.88.0.3";
  EXPECT_NE(before, metadata_hash(instance_metadata_data(i, context())));
}

TEST(InstanceMetadata, TheInstancesOptionsGoToTheVmmAndIntoTheHash) {
  InstanceRecord i = instance();
  const std::string before = metadata_hash(instance_metadata(i, context()));
  i.metadata_options.http_tokens = "required";
  i.metadata_options.http_endpoint = "disabled";
  i.metadata_options.http_put_response_hop_limit = 3;
  const json m = instance_metadata(i, context());
  EXPECT_EQ(m["http_tokens"], "required");
  EXPECT_EQ(m["http_endpoint"], "disabled");
  EXPECT_EQ(m["hop_limit"], 3);
  auto parsed = config::parse_metadata(m);
  ASSERT_TRUE(parsed.ok()) << parsed.message();
  EXPECT_TRUE(parsed->options.tokens_required);
  EXPECT_FALSE(parsed->options.endpoint_enabled);
  EXPECT_EQ(parsed->options.hop_limit, 3u);
  // A change of options alone is sent again (the reconciler compares this hash).
  EXPECT_NE(before, metadata_hash(m));
  // Out of range (the store holds only what the API checked, but never trust it).
  i.metadata_options.http_put_response_hop_limit = 0;
  EXPECT_EQ(vmm_metadata_options(i.metadata_options).hop_limit, 1u);
  i.metadata_options.http_put_response_hop_limit = 1000;
  EXPECT_EQ(vmm_metadata_options(i.metadata_options).hop_limit, 64u);
}

TEST(InstanceMetadata, TagsOnlyWithInstanceMetadataTagsEnabled) {
  InstanceRecord i = instance();
  i.tags = {{"Name", "web-1"},   {"team:owner@x", "ops"}, {"has space", "left out"},
            {"a/b", "left out"}, {"k=v", "left out"},     {"..", "left out"}};
  EXPECT_FALSE(instance_metadata_data(i, context())["meta-data"].contains("tags"));
  i.metadata_options.instance_metadata_tags = "enabled";
  const json d = instance_metadata_data(i, context());
  ASSERT_TRUE(config::check_metadata_data(d).ok()) << config::check_metadata_data(d).message();
  EXPECT_EQ(d["meta-data"]["tags"]["instance"], json({{"Name", "web-1"}, {"team:owner@x", "ops"}}));
  // No tags: an empty directory, as EC2 lists tags/instance/ with nothing in it.
  i.tags.clear();
  EXPECT_EQ(instance_metadata_data(i, context())["meta-data"]["tags"]["instance"], json::object());
}

TEST(InstanceMetadata, OlderRecordsParseToTheDefaultOptions) {
  // A record written before the options existed (no metadata_options field).
  nlohmann::json old = to_json(instance());
  old.erase("metadata_options");
  old.erase("metadata_options_applied");
  auto r = instance_from_json(old.dump());
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->metadata_options, InstanceMetadataOptions{});
  EXPECT_EQ(r->metadata_options.http_tokens, "optional");
  EXPECT_EQ(r->metadata_options.http_endpoint, "enabled");
  EXPECT_EQ(r->metadata_options.http_put_response_hop_limit, 1u);
  EXPECT_EQ(r->metadata_options.instance_metadata_tags, "disabled");
  EXPECT_TRUE(r->metadata_options_applied) << "its host has the defaults";
  // And they round-trip.
  InstanceRecord i = instance();
  i.metadata_options = {"required", "disabled", 7, "enabled"};
  i.metadata_options_applied = false;
  auto back = instance_from_json(to_json(i).dump());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->metadata_options, i.metadata_options);
  EXPECT_FALSE(back->metadata_options_applied);
}

}  // namespace
}  // namespace nimbus::cloud
