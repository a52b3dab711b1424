// The regions file (regions.h) and what DescribeRegions and GET /nimbus/v1/regions make of
// it (ec2_resources_api.cpp, cloud_server.cpp).
#include "cloud/regions.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "cloud/cloud_server.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/ec2_api.h"
#include "cloud/ec2_form_request.h"
#include "cloud/ec2_xml_test_util.h"

namespace nimbus::cloud {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::vector<std::pair<std::string, std::string>> pairs(const std::vector<RegionEndpoint>& v) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : v) out.emplace_back(r.name, r.endpoint);
  return out;
}

std::string parse_error(const std::string& text) {
  auto r = parse_regions(text);
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  return r.message();
}

const std::vector<std::pair<std::string, std::string>> kThree = {
    {"nimbus-west-1", "http://127.0.0.1:8773"},
    {"nimbus-east-1", "http://10.0.0.2:8773"},
    {"nimbus-central-1", "https://ec2.central.example"}};

TEST(Regions, ParsesTheLineForm) {
  auto r = parse_regions(
      "# name endpoint\n"
      "nimbus-west-1 http://127.0.0.1:8773/\n"
      "\n"
      "   nimbus-east-1\t http://10.0.0.2:8773\r\n"
      "nimbus-central-1 https://ec2.central.example\n");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(pairs(*r), kThree);  // file order; the trailing '/' dropped
}

TEST(Regions, ParsesTheJsonForms) {
  const std::string list =
      R"([{"name": "nimbus-west-1", "endpoint": "http://127.0.0.1:8773"},
          {"name": "nimbus-east-1", "endpoint": "http://10.0.0.2:8773/"},
          {"name": "nimbus-central-1", "endpoint": "https://ec2.central.example"}])";
  auto a = parse_regions("  \n" + list);
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(pairs(*a), kThree);
  auto b = parse_regions(R"({"regions": )" + list + "}");
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_EQ(pairs(*b), kThree);
}

TEST(Regions, RefusesBadFilesSayingWhere) {
  EXPECT_TRUE(contains(parse_error(""), "no region"));
  EXPECT_TRUE(contains(parse_error("# only a comment\n"), "no region"));
  EXPECT_TRUE(contains(parse_error("nimbus-west-1\n"), "line 1: expected NAME ENDPOINT"));
  EXPECT_TRUE(contains(parse_error("a http://x\nb http://y extra\n"), "line 2"));
  EXPECT_TRUE(contains(parse_error("Nimbus http://x\n"), "not a region name"));
  EXPECT_TRUE(contains(parse_error("1abc http://x\n"), "not a region name"));
  EXPECT_TRUE(contains(parse_error(std::string(65, 'a') + " http://x\n"), "not a region name"));
  EXPECT_TRUE(contains(parse_error("a http://x\na http://y\n"), "'a' is listed twice"));
  EXPECT_TRUE(contains(parse_error("a ftp://x\n"), "not an http:// or https:// URL"));
  EXPECT_TRUE(contains(parse_error("a http://\n"), "names no host"));
  EXPECT_TRUE(contains(parse_error("a http:///path\n"), "names no host"));
  EXPECT_TRUE(contains(parse_error("a http://" + std::string(300, 'h') + "\n"), "longer than"));
  EXPECT_TRUE(contains(parse_error(std::string("a http://x\x01y\n")), "control character"));
  EXPECT_TRUE(contains(parse_error("{\"regions\": 3}"), "expected a list"));
  EXPECT_TRUE(contains(parse_error("{\"zones\": []}"), "expected {\"regions\""));
  EXPECT_TRUE(contains(parse_error("[{\"name\": 1, \"endpoint\": \"http://x\"}]"), "region #1"));
  EXPECT_TRUE(contains(parse_error("[{\"name\": \"a\"}]"), "region #1"));
  EXPECT_TRUE(contains(parse_error("[1, 2]"), "region #1"));
  EXPECT_TRUE(contains(parse_error("{\"regions\": [}"), "not valid JSON"));
  EXPECT_TRUE(contains(parse_error("[]"), "no region"));
  std::string many;
  for (int i = 0; i < 201; ++i) many += "r" + std::to_string(i) + " http://x\n";
  EXPECT_TRUE(contains(parse_error(many), "more than 200 regions"));
}

TEST(Regions, LoadsAFileAndNamesItInErrors) {
  char tmpl[] = "/tmp/nimbus-regions-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string path = tmpl;
  std::ofstream(path) << "a http://127.0.0.1:1\nb http://127.0.0.1:2\n";
  auto r = load_regions_file(path);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->size(), 2u);
  std::ofstream(path) << "a\n";
  r = load_regions_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.message(), path)) << r.message();
  std::remove(path.c_str());
  r = load_regions_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

class DescribeRegionsTest : public ::testing::Test {
 protected:
  static CloudOptions options(bool with_regions) {
    CloudOptions o = CloudTestBed::default_options();
    o.region = "nimbus-east-1";
    o.endpoint_url = "http://127.0.0.1:9000";
    if (with_regions) {
      o.regions = {{"nimbus-west-1", "http://127.0.0.1:8773"},
                   {"nimbus-east-1", "http://127.0.0.1:9001"},
                   {"nimbus-central-1", "http://10.1.2.3:8773"}};
    }
    return o;
  }
  explicit DescribeRegionsTest(bool with_regions = true)
      : bed_(options(with_regions)), api_(bed_.cloud(), bed_.driver(), ApiCredentials{}) {}

  // The regions listed, as "NAME ENDPOINT", or "error CODE".
  std::vector<std::string> describe(const std::string& extra) {
    http::Reply r = route_cloud_request(
        bed_.cloud(), api_, form_request("Action=DescribeRegions&Version=2016-11-15" + extra));
    XmlNode doc = parse_xml(r.body);
    if (r.status != 200) return {"error " + doc.at("Errors/Error/Code")};
    std::vector<std::string> out;
    if (const XmlNode* info = doc.child("regionInfo")) {
      for (const XmlNode* item : info->all("item")) {
        EXPECT_EQ(item->at("optInStatus"), "opt-in-not-required");
        out.push_back(item->at("regionName") + " " + item->at("regionEndpoint"));
      }
    }
    return out;
  }

  CloudTestBed bed_;
  Ec2Api api_;
};

using V = std::vector<std::string>;

TEST_F(DescribeRegionsTest, ListsEveryRegionOfTheFile) {
  const V all = {"nimbus-west-1 http://127.0.0.1:8773", "nimbus-east-1 http://127.0.0.1:9001",
                 "nimbus-central-1 http://10.1.2.3:8773"};
  EXPECT_EQ(describe(""), all);
  EXPECT_EQ(describe("&AllRegions=true"), all);
  EXPECT_EQ(describe("&AllRegions=false"), all);
  EXPECT_EQ(describe("&RegionName.1=nimbus-central-1&RegionName.2=nimbus-west-1"),
            (V{"nimbus-west-1 http://127.0.0.1:8773", "nimbus-central-1 http://10.1.2.3:8773"}));
  EXPECT_EQ(describe("&Filter.1.Name=region-name&Filter.1.Value.1=nimbus-east-1"),
            (V{"nimbus-east-1 http://127.0.0.1:9001"}));
  EXPECT_EQ(describe("&Filter.1.Name=endpoint&Filter.1.Value.1=http://10.1.2.3:8773"),
            (V{"nimbus-central-1 http://10.1.2.3:8773"}));
  EXPECT_EQ(describe("&Filter.1.Name=region-name&Filter.1.Value.1=nimbus-*-1"
                     "&Filter.2.Name=endpoint&Filter.2.Value.1=http://127.0.0.1:*"),
            (V{"nimbus-west-1 http://127.0.0.1:8773", "nimbus-east-1 http://127.0.0.1:9001"}));
  EXPECT_EQ(describe("&Filter.1.Name=opt-in-status&Filter.1.Value.1=opted-in"), V{});
  EXPECT_EQ(describe("&Filter.1.Name=opt-in-status&Filter.1.Value.1=opt-in-not-required"), all);
  EXPECT_EQ(describe("&RegionName.1=nimbus-west-1&Filter.1.Name=region-name"
                     "&Filter.1.Value.1=nimbus-east-1"),
            V{});
}

TEST_F(DescribeRegionsTest, RefusesUnknownRegionsFiltersAndFlags) {
  EXPECT_EQ(describe("&RegionName.1=nimbus-west-1&RegionName.2=us-east-1"),
            V{"error InvalidParameterValue"});
  EXPECT_EQ(describe("&Filter.1.Name=color&Filter.1.Value.1=x"), V{"error InvalidParameterValue"});
  EXPECT_EQ(describe("&AllRegions=maybe"), V{"error InvalidParameterValue"});
}

TEST_F(DescribeRegionsTest, TheJsonListIsPublicAndTheSame) {
  http::Request req;
  req.method = "GET";
  req.path = "/nimbus/v1/regions";
  http::Reply r = route_cloud_request(bed_.cloud(), api_, req);  // no token
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["region"], "nimbus-east-1");
  ASSERT_EQ(j["regions"].size(), 3u);
  EXPECT_EQ(j["regions"][2]["name"], "nimbus-central-1");
  EXPECT_EQ(j["regions"][2]["endpoint"], "http://10.1.2.3:8773");
}

class OneRegionTest : public DescribeRegionsTest {
 protected:
  OneRegionTest() : DescribeRegionsTest(false) {}
};

TEST_F(OneRegionTest, WithoutAFileOnlyItsOwnRegion) {
  EXPECT_EQ(describe(""), V{"nimbus-east-1 http://127.0.0.1:9000"});
  EXPECT_EQ(describe("&RegionName.1=nimbus-west-1"), V{"error InvalidParameterValue"});
  http::Request req;
  req.method = "GET";
  req.path = "/nimbus/v1/regions";
  http::Reply r = route_cloud_request(bed_.cloud(), api_, req);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(
      nlohmann::json::parse(r.body)["regions"],
      nlohmann::json::parse(R"([{"name":"nimbus-east-1","endpoint":"http://127.0.0.1:9000"}])"));
}

}  // namespace
}  // namespace nimbus::cloud
