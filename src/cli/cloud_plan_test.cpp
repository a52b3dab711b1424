// `nimbus cloud up`'s plan: the flags' checks, the hosts' layout, the processes' arguments
// and the record `down` reads back.
#include "cli/cloud_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "cli/cloud_output.h"

namespace nimbus::cli {
namespace {

CloudUpSettings settings(const std::string& dir = "/tmp/nc") {
  CloudUpSettings s;
  s.state_dir = dir;
  return s;
}

bool has_pair(const std::vector<std::string>& argv, const std::string& flag,
              const std::string& value) {
  for (size_t i = 0; i + 1 < argv.size(); i++)
    if (argv[i] == flag && argv[i + 1] == value) return true;
  return false;
}

TEST(CloudPlan, DefaultsGiveOneHostInZoneA) {
  auto p = plan_cloud(settings());
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->url, "http://127.0.0.1:8773");
  EXPECT_EQ(p->zones, std::vector<std::string>{"nimbus-west-1a"});
  ASSERT_EQ(p->hosts.size(), 1u);
  const CloudHost& h = p->hosts[0];
  EXPECT_EQ(h.id, "host-1");
  EXPECT_EQ(h.zone, "nimbus-west-1a");
  EXPECT_EQ(h.dir, "/tmp/nc/hosts/host-1");
  EXPECT_EQ(h.socket, "/tmp/nc/hosts/host-1/nimbusd.sock");
  EXPECT_EQ(p->join_token_file(), "/tmp/nc/join-token");
}

TEST(CloudPlan, HostsGoOverTheZonesRoundRobin) {
  CloudUpSettings s = settings("/tmp/nc/");
  s.hosts = 5;
  s.zones = "a, b,us-east-9c";
  auto p = plan_cloud(s);
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->state_dir, "/tmp/nc");
  EXPECT_EQ(p->zones, (std::vector<std::string>{"nimbus-west-1a", "nimbus-west-1b", "us-east-9c"}));
  std::vector<std::string> zones;
  for (const CloudHost& h : p->hosts) zones.push_back(h.zone);
  EXPECT_EQ(zones, (std::vector<std::string>{"nimbus-west-1a", "nimbus-west-1b", "us-east-9c",
                                             "nimbus-west-1a", "nimbus-west-1b"}));
  EXPECT_EQ(p->hosts[4].id, "host-5");
  // Every host has a directory, socket and cgroup parent of its own.
  for (size_t i = 0; i < p->hosts.size(); i++) {
    for (size_t j = i + 1; j < p->hosts.size(); j++) {
      EXPECT_NE(p->hosts[i].dir, p->hosts[j].dir);
      EXPECT_NE(p->hosts[i].socket, p->hosts[j].socket);
      EXPECT_NE(p->hosts[i].cgroup_parent, p->hosts[j].cgroup_parent);
    }
  }
}

TEST(CloudPlan, WildcardListenIsReachedOnLoopback) {
  CloudUpSettings s = settings();
  s.listen = "0.0.0.0:9000";
  EXPECT_EQ(plan_cloud(s)->url, "http://127.0.0.1:9000");
  s.listen = "[::]:9000";
  EXPECT_EQ(plan_cloud(s)->url, "http://[::1]:9000");
  s.listen = "localhost:9001";
  EXPECT_EQ(plan_cloud(s)->url, "http://127.0.0.1:9001");
}

TEST(CloudPlan, BadFlagsAreRefusedNamingTheFlag) {
  struct Case {
    void (*change)(CloudUpSettings&);
    const char* needle;
  };
  const Case cases[] = {
      {[](CloudUpSettings& s) { s.state_dir = ""; }, "--state-dir"},
      {[](CloudUpSettings& s) { s.state_dir = "/"; }, "--state-dir"},
      {[](CloudUpSettings& s) { s.state_dir = "/tmp/" + std::string(120, 'x'); }, "too long"},
      {[](CloudUpSettings& s) { s.listen = "8773"; }, "--listen"},
      {[](CloudUpSettings& s) { s.listen = "127.0.0.1:0"; }, "give the port"},
      {[](CloudUpSettings& s) { s.listen = "example.com:80"; }, "not an IP address"},
      {[](CloudUpSettings& s) { s.region = "West"; }, "--region"},
      {[](CloudUpSettings& s) { s.region = ""; }, "--region"},
      {[](CloudUpSettings& s) { s.zones = ""; }, "at least one zone"},
      {[](CloudUpSettings& s) { s.zones = "a,a"; }, "given twice"},
      {[](CloudUpSettings& s) { s.zones = "A"; }, "is not a zone"},
      {[](CloudUpSettings& s) { s.zones = "zone-1"; }, "is not a zone"},
      {[](CloudUpSettings& s) { s.zones = "a,,b"; }, "is not a zone"},
      {[](CloudUpSettings& s) { s.strategy = "random"; }, "--strategy"},
      {[](CloudUpSettings& s) { s.hosts = 0; }, "--hosts 0 is out of range"},
      {[](CloudUpSettings& s) { s.hosts = kMaxCloudHosts + 1; }, "--hosts"},
      {[](CloudUpSettings& s) { s.host_memory = "lots"; }, "--host-memory"},
      {[](CloudUpSettings& s) { s.host_cpus = -1; }, "--host-cpus"},
  };
  for (const Case& c : cases) {
    CloudUpSettings s = settings();
    c.change(s);
    auto p = plan_cloud(s);
    ASSERT_FALSE(p.ok()) << c.needle;
    EXPECT_EQ(p.status().code(), Code::kInvalidArgument);
    EXPECT_NE(p.message().find(c.needle), std::string::npos) << p.message();
  }
}

TEST(CloudPlan, ProcessArguments) {
  CloudUpSettings s = settings();
  s.hosts = 2;
  s.zones = "a,b";
  s.strategy = "pack";
  s.host_memory = "2G";
  s.host_cpus = 3;
  s.listen = "0.0.0.0:8800";
  auto p = plan_cloud(s);
  ASSERT_TRUE(p.ok()) << p.message();
  const auto cloud = cloud_argv(*p);
  EXPECT_TRUE(has_pair(cloud, "--listen", "0.0.0.0:8800"));
  EXPECT_TRUE(has_pair(cloud, "--state-dir", "/tmp/nc"));
  EXPECT_TRUE(has_pair(cloud, "--zones", "nimbus-west-1a,nimbus-west-1b"));
  EXPECT_TRUE(has_pair(cloud, "--strategy", "pack"));
  // Images are handed out at the endpoint URL: never a wildcard address.
  EXPECT_TRUE(has_pair(cloud, "--endpoint-url", "http://127.0.0.1:8800"));

  p->hosts[1].port = 40123;
  const auto host = host_argv(*p, p->hosts[1]);
  EXPECT_TRUE(has_pair(host, "--state-dir", "/tmp/nc/hosts/host-2"));
  EXPECT_TRUE(has_pair(host, "--socket", "/tmp/nc/hosts/host-2/nimbusd.sock"));
  EXPECT_TRUE(has_pair(host, "--listen", "127.0.0.1:40123"));
  EXPECT_TRUE(has_pair(host, "--token-file", "/tmp/nc/hosts/host-2/api-token"));
  EXPECT_TRUE(has_pair(host, "--cloud", "http://127.0.0.1:8800"));
  EXPECT_TRUE(has_pair(host, "--zone", "nimbus-west-1b"));
  EXPECT_TRUE(has_pair(host, "--join-token-file", "/tmp/nc/join-token"));
  EXPECT_TRUE(has_pair(host, "--host-id", "host-2"));
  EXPECT_TRUE(has_pair(host, "--memory", "2048M"));
  EXPECT_TRUE(has_pair(host, "--reserved-memory", "0"));
  EXPECT_TRUE(has_pair(host, "--cpus", "3"));
  EXPECT_TRUE(has_pair(host, "--cgroup-parent", p->hosts[1].cgroup_parent));
  // Without --host-memory / --host-cpus nimbusd detects them.
  auto plain = plan_cloud(settings());
  const auto plain_host = host_argv(*plain, plain->hosts[0]);
  EXPECT_EQ(std::count(plain_host.begin(), plain_host.end(), "--memory"), 0);
  EXPECT_EQ(std::count(plain_host.begin(), plain_host.end(), "--reserved-memory"), 0);
  EXPECT_EQ(std::count(plain_host.begin(), plain_host.end(), "--cpus"), 0);
}

// --credentials goes to nimbus-cloud as an absolute path and stays in the record; a file
// that is not there is refused naming the flag.
TEST(CloudPlan, CredentialsArePassedAndRecorded) {
  const std::string file = testing::TempDir() + "/cloud-plan-credentials";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("AKIDTEST secret\n", f);
    std::fclose(f);
  }
  CloudUpSettings s = settings();
  s.credentials = file;
  auto p = plan_cloud(s);
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->credentials.front(), '/');
  EXPECT_TRUE(has_pair(cloud_argv(*p), "--credentials", p->credentials));
  auto back = cloud_plan_from_json(to_json(*p));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->credentials, p->credentials);
  EXPECT_NE(format_cloud_up(*p, "ami-1").find("/console (sign in with a key of " + p->credentials),
            std::string::npos);
  // Without: no flag, and the banner says what signing in needs.
  auto plain = plan_cloud(settings());
  ASSERT_TRUE(plain.ok());
  const auto argv = cloud_argv(*plain);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--credentials"), 0);
  EXPECT_NE(format_cloud_up(*plain, "ami-1").find("--credentials FILE"), std::string::npos);
  s.credentials = file + ".missing";
  auto missing = plan_cloud(s);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("--credentials"), std::string::npos);
  std::remove(file.c_str());
}

TEST(CloudPlan, CgroupParentsOfTwoCloudsDiffer) {
  EXPECT_EQ(cgroup_parent_for(kDefaultCloudStateDir, "host-1"), "nimbus-cloud-host-1");
  const std::string a = cgroup_parent_for("/tmp/a", "host-1");
  const std::string b = cgroup_parent_for("/tmp/b", "host-1");
  EXPECT_NE(a, b);
  EXPECT_NE(a, "nimbus-cloud-host-1");
  EXPECT_EQ(a, cgroup_parent_for("/tmp/a", "host-1"));  // stable across runs
  EXPECT_EQ(a.rfind("nimbus-cloud-", 0), 0u);
  EXPECT_EQ(a.find('/'), std::string::npos);
}

TEST(CloudPlan, RecordRoundTrips) {
  CloudUpSettings s = settings();
  s.hosts = 2;
  auto p = plan_cloud(s);
  ASSERT_TRUE(p.ok());
  p->cloud_pid = 4242;
  p->hosts[0].pid = 4243;
  p->hosts[0].port = 40001;
  auto back = cloud_plan_from_json(to_json(*p));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->cloud_pid, 4242);
  EXPECT_EQ(back->url, p->url);
  EXPECT_EQ(back->zones, p->zones);
  ASSERT_EQ(back->hosts.size(), 2u);
  EXPECT_EQ(back->hosts[0].pid, 4243);
  EXPECT_EQ(back->hosts[0].port, 40001);
  EXPECT_EQ(back->hosts[1].log, p->hosts[1].log);
  EXPECT_EQ(back->hosts[1].cgroup_parent, p->hosts[1].cgroup_parent);
}

TEST(CloudPlan, DamagedRecordsAreRefused) {
  auto p = plan_cloud(settings());
  ASSERT_TRUE(p.ok());
  const nlohmann::json good = to_json(*p);
  const auto refused = [](const nlohmann::json& j) { return !cloud_plan_from_json(j).ok(); };
  EXPECT_TRUE(refused(nlohmann::json::array()));
  EXPECT_TRUE(refused(nlohmann::json::parse("null")));
  for (const auto& [pointer, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"/cloud_pid", -1},
           {"/cloud_pid", "12"},
           {"/cloud_pid", 99999999},
           {"/state_dir", "/"},
           {"/state_dir", "relative"},
           {"/url", "unix:/x"},
           {"/hosts/0/pid", -1},
           {"/hosts/0/port", 70000},
           {"/hosts/0/id", "../x"},
           {"/hosts/0/dir", "/etc"},
           {"/hosts/0/pid_file", "/tmp/nc/../../etc/passwd"},
           {"/hosts", "none"},
       }) {
    nlohmann::json bad = good;
    bad[nlohmann::json::json_pointer(pointer)] = value;
    EXPECT_TRUE(refused(bad)) << pointer << " = " << value;
  }
  nlohmann::json many = good;
  for (int i = 0; i < kMaxCloudHosts; i++) many["hosts"].push_back(good["hosts"][0]);
  EXPECT_TRUE(refused(many));
}

TEST(CloudPlan, FirstImageIdFromDescribeImages) {
  const std::string xml =
      "<DescribeImagesResponse><imagesSet><item><imageId>ami-0a1b2c3d4e5f</imageId>"
      "<name>x</name></item><item><imageId>ami-ffff</imageId></item></imagesSet>"
      "</DescribeImagesResponse>";
  EXPECT_EQ(first_image_id(xml), "ami-0a1b2c3d4e5f");
  EXPECT_EQ(first_image_id("<imagesSet/>"), "");
  EXPECT_EQ(first_image_id("<imageId>ami-12"), "");  // unterminated
  // Whatever goes into the printed command is an AMI id and nothing else.
  EXPECT_EQ(first_image_id("<imageId>ami-1; rm -rf /</imageId>"), "");
  EXPECT_EQ(first_image_id("<imageId>i-123</imageId>"), "");
  EXPECT_EQ(first_image_id("<imageId>ami-</imageId>"), "");
  EXPECT_EQ(first_image_id("<imageId>ami-" + std::string(100, 'a') + "</imageId>"), "");
}

}  // namespace
}  // namespace nimbus::cli
