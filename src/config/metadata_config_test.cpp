#include "config/metadata_config.h"

#include <gtest/gtest.h>

#include "config/vm_config.h"

namespace nimbus::config {
namespace {

json sample_data() {
  return json::parse(R"({
    "meta-data": {"instance-id": "i-0123", "placement": {"availability-zone": "nimbus-west-1a"},
                  "public-keys": {"0=my-key": {"openssh-key": "ssh-ed25519 AAAA me"}}},
    "user-data": "IyEvYmluL3NoCg==",
    "dynamic": {"instance-identity": {"document": "{\"instanceId\": \"i-0123\"}"}}})");
}

TEST(MetadataConfig, ParsesTheWholeSectionAndRoundTrips) {
  json j = {{"data", sample_data()},
            {"http_tokens", "required"},
            {"http_endpoint", "disabled"},
            {"hop_limit", 3}};
  auto m = parse_metadata(j);
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_TRUE(m->options.tokens_required);
  EXPECT_FALSE(m->options.endpoint_enabled);
  EXPECT_EQ(m->options.hop_limit, 3u);
  EXPECT_EQ(m->data, sample_data());
  EXPECT_EQ(to_json(*m), j);
  auto again = parse_metadata(to_json(*m));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *m);
}

TEST(MetadataConfig, DefaultsAreEc2s) {
  auto m = parse_metadata(json::object());
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->options.tokens_required);
  EXPECT_TRUE(m->options.endpoint_enabled);
  EXPECT_EQ(m->options.hop_limit, 1u);
  EXPECT_EQ(m->data, json::object());
}

TEST(MetadataConfig, RefusesBadOptionsAndNamesTheField) {
  for (const auto& [text, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"http_tokens": "sometimes"})", "http_tokens"},
           {R"({"http_tokens": true})", "http_tokens"},
           {R"({"http_endpoint": "on"})", "http_endpoint"},
           {R"({"hop_limit": 0})", "hop_limit"},
           {R"({"hop_limit": 65})", "hop_limit"},
           {R"({"hop_limit": -1})", "hop_limit"},
           {R"({"hop_limit": 1.5})", "hop_limit"},
           {R"({"hops": 1})", "hops"},
           {R"({"data": []})", "data"},
           {R"({"data": "x"})", "data"},
       }) {
    auto m = parse_metadata(json::parse(text));
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_NE(m.message().find(field), std::string::npos) << m.message();
  }
  EXPECT_FALSE(parse_metadata(json::array()).ok());
}

TEST(MetadataConfig, OptionsPatchIsAllOrNothing) {
  MetadataOptions o;
  ASSERT_TRUE(parse_metadata_options(json{{"http_tokens", "required"}}, o).ok());
  EXPECT_TRUE(o.tokens_required);
  EXPECT_TRUE(o.endpoint_enabled);
  const MetadataOptions before = o;
  EXPECT_FALSE(
      parse_metadata_options(json{{"http_endpoint", "disabled"}, {"hop_limit", 99}}, o).ok());
  EXPECT_EQ(o, before);
  // "data" belongs to the whole section, not to the options.
  EXPECT_FALSE(parse_metadata_options(json{{"data", json::object()}}, o).ok());
}

TEST(MetadataConfig, DataTreeRules) {
  EXPECT_TRUE(check_metadata_data(sample_data()).ok());
  for (const char* text : {
           R"({"a": 1})",
           R"({"a": ["x"]})",
           R"({"a": null})",
           R"({"a/b": "x"})",
           R"({"": "x"})",
           R"({"..": "x"})",
           R"({"a": {".": "x"}})",
           R"({"a\nb": "x"})",
           R"({"=x": "x"})",
           R"({"0=a": "x", "0=b": "y"})",
           R"({"0": "x", "0=b": "y"})",
           R"({"user-data": "not base64!"})",
           R"({"user-data": {"a": "b"}})",
       }) {
    EXPECT_FALSE(check_metadata_data(json::parse(text)).ok()) << text;
  }
  // Depth, entries and size are bounded.
  json deep = "leaf";
  for (unsigned i = 0; i < kMaxMetadataDepth + 2; i++) deep = json{{"d", deep}};
  EXPECT_FALSE(check_metadata_data(deep).ok());
  json wide = json::object();
  for (size_t i = 0; i <= kMaxMetadataEntries; i++) wide[std::to_string(i)] = "";
  EXPECT_FALSE(check_metadata_data(wide).ok());
  EXPECT_FALSE(check_metadata_data(json{{"big", std::string(kMaxMetadataBytes, 'x')}}).ok());
  EXPECT_TRUE(check_metadata_data(json{{"big", std::string(kMaxMetadataBytes / 2, 'x')}}).ok());
}

TEST(MetadataConfig, Base64) {
  EXPECT_EQ(decode_base64(""), "");
  EXPECT_EQ(decode_base64("aGk="), "hi");
  EXPECT_EQ(decode_base64("aGk"), "hi");
  EXPECT_EQ(decode_base64("aGVsbG8gd29ybGQ="), "hello world");
  EXPECT_EQ(decode_base64("aGVs\nbG8="), "hello");
  EXPECT_EQ(decode_base64("AAEC/w=="), std::string("\0\1\2\xff", 4));
  for (const char* bad : {"a", "aGk==", "a===", "aG=k", "aG k", "aGl=", "====", "aGk=aGk="}) {
    EXPECT_FALSE(decode_base64(bad)) << bad;
  }
}

TEST(MetadataConfig, VmConfigCarriesTheSection) {
  json doc = {{"metadata", {{"data", sample_data()}, {"http_tokens", "required"}}}};
  auto c = parse_vm_config(doc);
  ASSERT_TRUE(c.ok()) << c.message();
  ASSERT_TRUE(c->metadata.has_value());
  EXPECT_TRUE(c->metadata->options.tokens_required);
  EXPECT_EQ(c->metadata->data, sample_data());
  auto again = parse_vm_config(to_json(*c));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->metadata, c->metadata);

  // Absent: no service, and none written back.
  auto none = parse_vm_config(json::object());
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->metadata.has_value());
  EXPECT_FALSE(to_json(*none).contains("metadata"));

  auto bad = parse_vm_config(json{{"metadata", {{"http_tokens", "no"}}}});
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace nimbus::config
