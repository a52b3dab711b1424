#include "cloud/ec2_query.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace nimbus::cloud {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

QueryParams parse_ok(std::string_view form) {
  auto p = QueryParams::parse(form);
  EXPECT_TRUE(p.ok()) << p.message();
  return p.ok() ? *p : QueryParams();
}

// The body awscli sends for `aws ec2 describe-instances --filters ...` with two filters
// (CLOUD-NOTES §1.2, boto3's capture).
constexpr std::string_view kDescribe =
    "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-state-name"
    "&Filter.1.Value.1=pending&Filter.1.Value.2=running&Filter.2.Name=tag%3AName"
    "&Filter.2.Value.1=web&MaxResults=5";

TEST(QueryParams, ParsesACapturedRequest) {
  QueryParams p = parse_ok(kDescribe);
  EXPECT_EQ(p.get("Action"), "DescribeInstances");
  EXPECT_EQ(p.get("Version"), "2016-11-15");
  EXPECT_EQ(p.size(), 8u);
  auto filters = p.members("Filter");
  ASSERT_EQ(filters.size(), 2u);
  EXPECT_EQ(filters[0].get("Name"), "instance-state-name");
  EXPECT_EQ(filters[0].list("Value"), (std::vector<std::string>{"pending", "running"}));
  EXPECT_EQ(filters[1].get("Name"), "tag:Name");
  EXPECT_EQ(filters[1].list("Value"), std::vector<std::string>{"web"});
  EXPECT_EQ(filters[0].size(), 3u);  // Name, Value.1, Value.2 with "Filter.1." stripped
  auto max = p.get_int("MaxResults", 5, 1000);
  ASSERT_TRUE(max.ok()) << max.message();
  EXPECT_EQ(*max, 5);
}

TEST(QueryParams, DecodesPercentAndPlus) {
  QueryParams p = parse_ok("UserData=aGVsbG8%3D&Description=a+b%20c%2Bd&Empty=&Flag");
  EXPECT_EQ(p.get("UserData"), "aGVsbG8=");
  EXPECT_EQ(p.get("Description"), "a b c+d");
  EXPECT_EQ(p.get("Empty"), "");
  EXPECT_EQ(p.get("Flag"), "");  // a pair without '='
  EXPECT_TRUE(p.has("Flag"));
  EXPECT_FALSE(p.has("Missing"));
  EXPECT_EQ(p.get("Missing"), std::nullopt);
  EXPECT_EQ(p.get_or("Missing", "dflt"), "dflt");
  EXPECT_EQ(p.get_or("UserData", "dflt"), "aGVsbG8=");
  // Bytes pass through untouched (values are not required to be UTF-8).
  EXPECT_EQ(parse_ok("Tag=%FF%00x").get("Tag"), std::string("\xff\0x", 3));
  EXPECT_EQ(parse_ok("Key%2EName=1").get("Key.Name"), "1");  // the key is decoded too
}

TEST(QueryParams, SkipsEmptyPairs) {
  QueryParams p = parse_ok("&&A=1&&B=2&");
  EXPECT_EQ(p.size(), 2u);
  EXPECT_TRUE(parse_ok("").empty());
  EXPECT_TRUE(parse_ok("&").empty());
}

TEST(QueryParams, RefusesBadEscapes) {
  for (std::string_view form : {"A=%", "A=%4", "A=%zz", "A=x%G1", "%=1", "A%2=1"}) {
    auto p = QueryParams::parse(form);
    ASSERT_FALSE(p.ok()) << form;
    EXPECT_EQ(p.code(), Code::kInvalidArgument);
    EXPECT_TRUE(contains(p.message(), "%-escape")) << p.message();
  }
  EXPECT_TRUE(contains(QueryParams::parse("Action=Run&ImageId=%zz").message(), "'ImageId'"));
}

TEST(QueryParams, RefusesARepeatedKey) {
  auto p = QueryParams::parse("InstanceId.1=i-1&InstanceId.1=i-2");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(p.message(), "'InstanceId.1' appears more than once")) << p.message();
  // Two spellings of one key are one key.
  EXPECT_FALSE(QueryParams::parse("A=1&%41=2").ok());
}

TEST(QueryParams, RefusesBadKeys) {
  struct Case {
    std::string_view form, expect;
  };
  for (const Case& c :
       {Case{"=x", "empty name"}, Case{"A+B=1", "printable ASCII"},
        Case{"A%00=1", "printable ASCII"}, Case{"A%0A=1", "printable ASCII"},
        Case{"Filter..Name=1", "empty segment"}, Case{".A=1", "empty segment"},
        Case{"A.=1", "empty segment"}, Case{"Filter.0.Name=x", "index '0'"},
        Case{"InstanceId.01=i", "index '01'"}, Case{"InstanceId.10001=i", "index '10001'"},
        Case{"InstanceId.99999999999999999999=i", "from 1 to 10000"}}) {
    auto p = QueryParams::parse(c.form);
    ASSERT_FALSE(p.ok()) << c.form;
    EXPECT_EQ(p.code(), Code::kInvalidArgument);
    EXPECT_TRUE(contains(p.message(), std::string(c.expect))) << c.form << ": " << p.message();
  }
  EXPECT_TRUE(parse_ok("InstanceId.10000=i").has("InstanceId.10000"));
}

TEST(QueryParams, EnforcesLimits) {
  // 4000 parameters pass, 4001 do not.
  std::string form;
  for (int i = 1; i <= 4000; ++i) form += "P" + std::to_string(i) + "=v&";
  EXPECT_EQ(parse_ok(form).size(), 4000u);
  auto p = QueryParams::parse(form + "X=1");
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(contains(p.message(), "more than 4000 parameters")) << p.message();

  std::string key(256, 'k');
  EXPECT_TRUE(QueryParams::parse(key + "=1").ok());
  p = QueryParams::parse(key + "k=1");
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(contains(p.message(), "longer than 256 bytes")) << p.message();
  EXPECT_LT(p.message().size(), 200u);  // the key is quoted shortened
  // The key bound holds after decoding: 256 escapes decode to 256 bytes.
  std::string escaped;
  for (int i = 0; i < 256; ++i) escaped += "%41";
  EXPECT_TRUE(QueryParams::parse(escaped + "=1").ok());
  EXPECT_FALSE(QueryParams::parse(escaped + "%41=1").ok());

  std::string value(65536, 'v');
  EXPECT_TRUE(QueryParams::parse("UserData=" + value).ok());
  p = QueryParams::parse("UserData=" + value + "v");
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(contains(p.message(), "'UserData' is longer than 65536 bytes")) << p.message();
}

TEST(QueryParams, ListsInNumericOrder) {
  QueryParams p = parse_ok(
      "InstanceId.10=j&InstanceId.2=b&InstanceId.1=a&InstanceId.3=c&InstanceId=bare"
      "&InstanceId.4.Sub=s&InstanceIds.1=other&InstanceIdX=y");
  EXPECT_EQ(p.list("InstanceId"), (std::vector<std::string>{"a", "b", "c", "j"}));
  EXPECT_EQ(p.list("InstanceIds"), std::vector<std::string>{"other"});
  EXPECT_TRUE(p.list("Nothing").empty());
  EXPECT_TRUE(p.list("Instance").empty());  // a prefix of a name is not the name
}

TEST(QueryParams, MembersNestAndStrip) {
  // boto3 authorize_security_group_ingress and run_instances shapes (CLOUD-NOTES §1.2).
  QueryParams p = parse_ok(
      "IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22"
      "&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0&IpPermissions.1.IpRanges.2.CidrIp=10.0.0.0%"
      "2F8"
      "&IpPermissions.2.IpProtocol=udp&IpPermissions.11.IpProtocol=icmp&IpPermissions.3=bare"
      "&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name"
      "&TagSpecification.1.Tag.1.Value=web&TagSpecification.1.Tag.2.Key=env");
  auto perms = p.members("IpPermissions");
  ASSERT_EQ(perms.size(), 3u);  // 1, 2, 11 (numeric order); 3 is not a structure
  EXPECT_EQ(perms[0].get("IpProtocol"), "tcp");
  EXPECT_EQ(perms[1].get("IpProtocol"), "udp");
  EXPECT_EQ(perms[2].get("IpProtocol"), "icmp");
  auto port = perms[0].get_int("FromPort", -1, 65535);
  ASSERT_TRUE(port.ok());
  EXPECT_EQ(*port, 22);
  auto ranges = perms[0].members("IpRanges");
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].get("CidrIp"), "0.0.0.0/0");
  EXPECT_EQ(ranges[1].get("CidrIp"), "10.0.0.0/8");
  EXPECT_EQ(ranges[0].all().size(), 1u);

  auto specs = p.members("TagSpecification");
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].get("ResourceType"), "instance");
  auto tags = specs[0].members("Tag");
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[0].get("Key"), "Name");
  EXPECT_EQ(tags[0].get("Value"), "web");
  EXPECT_EQ(tags[1].get("Key"), "env");
  EXPECT_FALSE(tags[1].has("Value"));
  EXPECT_TRUE(p.members("Nothing").empty());
}

TEST(QueryParams, WalkingAHostileRequestIsNotQuadratic) {
  // 4000 parameters in the shapes that could make a naive walk quadratic: one list of
  // 2000 elements and 2000 one-key structures, keys interleaved in text order.
  std::string form;
  for (int i = 1; i <= 2000; ++i) {
    form += "Filter." + std::to_string(i) + ".Value.1=v&";
    form += "InstanceId." + std::to_string(i) + "=i-" + std::to_string(i) + "&";
  }
  QueryParams p = parse_ok(form);
  auto start = std::chrono::steady_clock::now();
  size_t seen = 0;
  for (int round = 0; round < 20; ++round) {
    auto filters = p.members("Filter");
    for (const auto& f : filters) seen += f.list("Value").size();
    seen += p.list("InstanceId").size();
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  EXPECT_EQ(seen, 20u * 4000u);
  auto ids = p.list("InstanceId");
  EXPECT_EQ(ids.front(), "i-1");
  EXPECT_EQ(ids[1], "i-2");
  EXPECT_EQ(ids.back(), "i-2000");
  // 20 full walks of 4000 keys: milliseconds; a quadratic walk would take seconds
  // (generous bound for a loaded 2-core machine and sanitizer builds).
  EXPECT_LT(ms, 3000) << ms;
}

TEST(QueryParams, GetIntChecksFormAndRange) {
  QueryParams p = parse_ok(
      "MaxCount=1000&MinCount=0&Neg=-5&X=x&Plus=%2B5&Space=%205&Big=99999999999999999999"
      "&Empty=&Frac=1.5");
  auto v = p.get_int("MaxCount", 1, 1000);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 1000);
  v = p.get_int("Neg", -10, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, -5);
  v = p.get_int("Absent", 1, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, std::nullopt);

  v = p.get_int("X", 1, 1000);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.code(), Code::kInvalidArgument);
  EXPECT_EQ(v.message(), "Invalid value 'x' for X: expected an integer from 1 to 1000");
  v = p.get_int("MinCount", 1, 1000);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.message(), "Invalid value '0' for MinCount: expected an integer from 1 to 1000");
  for (const char* name : {"Plus", "Space", "Big", "Empty", "Frac"})
    EXPECT_FALSE(p.get_int(name, INT64_MIN, INT64_MAX).ok()) << name;
}

TEST(QueryParams, GetBoolTakesOnlyTrueAndFalse) {
  QueryParams p = parse_ok("DryRun=true&Force=false&Bad=True&One=1");
  auto b = p.get_bool("DryRun");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, true);
  b = p.get_bool("Force");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, false);
  b = p.get_bool("Absent");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, std::nullopt);
  b = p.get_bool("Bad");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.message(), "Invalid value 'True' for Bad: expected true or false");
  EXPECT_FALSE(p.get_bool("One").ok());
}

TEST(QueryParams, ErrorMessagesQuoteLongValuesShortened) {
  QueryParams p = parse_ok("MaxCount=" + std::string(60000, '9'));
  auto v = p.get_int("MaxCount", 1, 1000);
  ASSERT_FALSE(v.ok());
  EXPECT_LT(v.message().size(), 150u) << v.message();
  EXPECT_TRUE(contains(v.message(), "...'")) << v.message();
  // Never cuts a UTF-8 sequence in two.
  std::string euro;
  for (int i = 0; i < 40; ++i) euro += "\xE2\x82\xAC";
  std::string q = quote_value_for_message(euro);
  EXPECT_EQ(q, "'" + euro.substr(0, 63) + "...'");
}

TEST(QueryParams, MergeRefusesDuplicatesAndChangesNothing) {
  QueryParams url = parse_ok("Action=DescribeRegions");
  QueryParams body = parse_ok("Version=2016-11-15&RegionName.1=r");
  ASSERT_TRUE(url.merge(body).ok());
  EXPECT_EQ(url.size(), 3u);
  EXPECT_EQ(url.get("Version"), "2016-11-15");

  QueryParams clash = parse_ok("New=1&Action=RunInstances");
  Status s = url.merge(clash);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(s.message(), "'Action' is given twice")) << s.message();
  EXPECT_EQ(url.get("Action"), "DescribeRegions");
  EXPECT_FALSE(url.has("New"));  // nothing added

  std::string form;
  for (int i = 1; i <= 3998; ++i) form += "P" + std::to_string(i) + "=v&";
  QueryParams big = parse_ok(form);
  EXPECT_FALSE(big.merge(url).ok());  // 3998 + 3 > 4000
  EXPECT_EQ(big.size(), 3998u);
}

TEST(QueryParams, FromPairsChecksLikeParse) {
  auto p = QueryParams::from_pairs(
      {{"Action", "DescribeRegions"}, {"RegionName.2", "b"}, {"RegionName.1", "a"}});
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->list("RegionName"), (std::vector<std::string>{"a", "b"}));
  auto dup = QueryParams::from_pairs({{"A", "1"}, {"A", "2"}});
  ASSERT_FALSE(dup.ok());
  EXPECT_TRUE(contains(dup.message(), "'A' appears more than once")) << dup.message();
  EXPECT_FALSE(QueryParams::from_pairs({{"Filter.0.Name", "x"}}).ok());
  EXPECT_FALSE(QueryParams::from_pairs({{"bad key", "x"}}).ok());
  EXPECT_FALSE(QueryParams::from_pairs({{"V", std::string(65537, 'v')}}).ok());
  std::multimap<std::string, std::string> many;
  for (int i = 0; i <= 4000; ++i) many.emplace("P" + std::to_string(i), "v");
  EXPECT_FALSE(QueryParams::from_pairs(many).ok());
}

TEST(QueryParams, SetReplaces) {
  QueryParams p;
  p.set("A", "1");
  p.set("A", "2");
  EXPECT_EQ(p.get("A"), "2");
  EXPECT_EQ(p.all().size(), 1u);
}

}  // namespace
}  // namespace nimbus::cloud
