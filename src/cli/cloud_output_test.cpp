// The operator's tables of `nimbus cloud` and what `up` prints.
#include "cli/cloud_output.h"

#include <gtest/gtest.h>

namespace nimbus::cli {
namespace {

using json = nlohmann::json;

json host(const std::string& id, const std::string& zone, bool alive, bool draining,
          int instances) {
  json inst = json::object();
  for (int i = 0; i < instances; i++) inst["i-" + std::to_string(i)] = {{"vcpus", 1}};
  return {{"id", id},
          {"zone", zone},
          {"alive", alive},
          {"draining", draining},
          {"instances", inst},
          {"host",
           {{"cgroup", "v2"},
            {"cpus", {{"allocated", 2}, {"capacity", 8}}},
            {"memory_mib", {{"allocated", 512}, {"capacity", 4096}}},
            {"disk_mib", {{"allocated", 1024}, {"capacity", 20480}}}}}};
}

TEST(CloudOutput, HostState) {
  EXPECT_EQ(cloud_host_state(host("h", "z", true, false, 0)), "up");
  EXPECT_EQ(cloud_host_state(host("h", "z", false, false, 0)), "down");
  EXPECT_EQ(cloud_host_state(host("h", "z", true, true, 0)), "draining");
  EXPECT_EQ(cloud_host_state(json::array()), "down");
  EXPECT_EQ(cloud_host_state({{"alive", "yes"}}), "down");
}

TEST(CloudOutput, HostsTable) {
  const json hosts = {host("host-1", "nimbus-west-1a", true, false, 2),
                      host("host-2", "nimbus-west-1b", false, false, 0)};
  EXPECT_EQ(format_cloud_hosts(hosts),
            "ID      Zone            State  CPUs  Memory       Disk        Instances\n"
            "host-1  nimbus-west-1a  up     2/8   512MiB/4GiB  1GiB/20GiB  2\n"
            "host-2  nimbus-west-1b  down   2/8   512MiB/4GiB  1GiB/20GiB  0\n");
}

TEST(CloudOutput, HostsTableSurvivesHostileFields) {
  json h = {{"id", "evil\x1b[2Jhost"}, {"zone", 5}, {"host", "not an object"}};
  const std::string out = format_cloud_hosts(json::array({h, json("junk"), json()}));
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_NE(out.find("evil?[2Jhost"), std::string::npos);
  EXPECT_NE(out.find("--"), std::string::npos);
  EXPECT_EQ(format_cloud_hosts(json("no list")),
            "ID  Zone  State  CPUs  Memory  Disk  Instances\n");
  // Very long values are cut, not padded into the megabytes.
  h["id"] = std::string(100000, 'x');
  EXPECT_LT(format_cloud_hosts(json::array({h})).size(), 400u);
}

TEST(CloudOutput, ZonesCountHostsUpAndLiveInstances) {
  const json zones = {"nimbus-west-1a", "nimbus-west-1b", "nimbus-west-1c"};
  const json hosts = {host("host-1", "nimbus-west-1a", true, false, 0),
                      host("host-2", "nimbus-west-1a", false, false, 0),
                      host("host-3", "nimbus-west-1b", true, true, 0),
                      host("host-4", "elsewhere-1a", true, false, 0)};
  const json instances = {{{"id", "i-1"}, {"zone", "nimbus-west-1a"}, {"state", "running"}},
                          {{"id", "i-2"}, {"zone", "nimbus-west-1a"}, {"state", "terminated"}},
                          {{"id", "i-3"}, {"zone", "nimbus-west-1b"}, {"state", "stopped"}}};
  const json rows = cloud_zones(zones, hosts, instances);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], json({{"zone", "nimbus-west-1a"}, {"hosts", 2}, {"up", 1}, {"instances", 1}}));
  EXPECT_EQ(rows[1], json({{"zone", "nimbus-west-1b"}, {"hosts", 1}, {"up", 0}, {"instances", 1}}));
  EXPECT_EQ(rows[2], json({{"zone", "nimbus-west-1c"}, {"hosts", 0}, {"up", 0}, {"instances", 0}}));
  EXPECT_EQ(rows[3]["zone"], "elsewhere-1a");
  EXPECT_EQ(format_cloud_zones(rows),
            "Zone            Hosts  Up  Instances\n"
            "nimbus-west-1a  2      1   1\n"
            "nimbus-west-1b  1      0   1\n"
            "nimbus-west-1c  0      0   0\n"
            "elsewhere-1a    1      1   0\n");
  EXPECT_EQ(cloud_zones(json(), json(3), json("x")), json::array());
}

TEST(CloudOutput, InstancesTable) {
  const json instances = {{{"id", "i-0abc"},
                           {"state", "running"},
                           {"instance_type", "t3.micro"},
                           {"zone", "nimbus-west-1a"},
                           {"host", "host-1"},
                           {"private_ip", "10.88.0.2"},
                           {"public_ip", "127.100.1.1"}},
                          {{"id", "i-0def"}, {"state", "pending"}, {"instance_type", "t3.small"}}};
  EXPECT_EQ(format_cloud_instances(instances),
            "ID      State    Type      Zone            Host    Private IP  Public IP    Move\n"
            "i-0abc  running  t3.micro  nimbus-west-1a  host-1  10.88.0.2   127.100.1.1  --\n"
            "i-0def  pending  t3.small  --              --      --          --           --\n");
}

TEST(CloudOutput, MoveStatesAndResults) {
  json i = {{"id", "i-0abc"}, {"host", "h1"}, {"move_to", "*"}, {"move_from", ""}};
  EXPECT_EQ(cloud_move_state(i), "queued to another host");
  i["move_to"] = "h2";
  i["move_from"] = "h1";
  EXPECT_EQ(cloud_move_state(i), "moving to h2");
  i["move_to"] = "";
  i["last_move"] = {{"id", 1},
                    {"from", "h1"},
                    {"to", "h2"},
                    {"ok", true},
                    {"downtime_ms", 42.25},
                    {"total_ms", 1500},
                    {"at", "2026-12-07T12:00:00.000Z"},
                    {"old_public_ip", "10.1.1.2"},
                    {"new_public_ip", "10.1.2.2"}};
  EXPECT_EQ(cloud_move_state(i), "moved from h1");
  EXPECT_EQ(format_move_result(i),
            "i-0abc  h1 -> h2  downtime 42.2 ms, 1.5 s in all, public IP 10.1.1.2 -> 10.1.2.2\n");
  i["last_move"]["ok"] = false;
  i["last_move"]["error"] = "not enough vCPUs\x1b[2J";
  EXPECT_EQ(cloud_move_state(i), "move failed: not enough vCPUs?[2J");
  EXPECT_EQ(format_move_result(i), "i-0abc  h1 -> h2  failed: not enough vCPUs?[2J\n");
  // Never moved (a record from before moves, or garbage): "--".
  EXPECT_EQ(cloud_move_state(json{{"id", "i-1"}}), "--");
  EXPECT_EQ(cloud_move_state(json{{"last_move", {{"id", 0}}}}), "--");
  EXPECT_EQ(cloud_move_state(json("x")), "--");
}

TEST(CloudOutput, UpSummaryGivesTheAwsCommands) {
  CloudUpSettings s;
  s.state_dir = "/tmp/nc";
  s.listen = "127.0.0.1:9100";
  s.zones = "a,b";
  s.hosts = 2;
  auto p = plan_cloud(s);
  ASSERT_TRUE(p.ok());
  const std::string out = format_cloud_up(*p, "ami-0123abcd");
  EXPECT_EQ(out.rfind("Nimbus Cloud is up: region nimbus-west-1, zones nimbus-west-1a, "
                      "nimbus-west-1b, 2 hosts\n",
                      0),
            0u);
  EXPECT_NE(out.find("  endpoint  http://127.0.0.1:9100\n"), std::string::npos);
  EXPECT_NE(out.find("  export AWS_ACCESS_KEY_ID=nimbus AWS_SECRET_ACCESS_KEY=nimbus "
                     "AWS_DEFAULT_REGION=nimbus-west-1\n"),
            std::string::npos);
  EXPECT_NE(out.find("  aws --endpoint-url http://127.0.0.1:9100 ec2 run-instances --image-id "
                     "ami-0123abcd --instance-type t3.micro\n"),
            std::string::npos);
  EXPECT_NE(out.find("nimbus cloud down --state-dir /tmp/nc"), std::string::npos);
  // Without an image id the command says where to find one.
  const std::string no_image = format_cloud_up(*p, "");
  EXPECT_NE(no_image.find("--image-id AMI_ID"), std::string::npos);
  EXPECT_NE(no_image.find("describe-images"), std::string::npos);
  // One host, one zone: singular words; the default directory needs no flag.
  auto one = plan_cloud(CloudUpSettings{});
  ASSERT_TRUE(one.ok());
  const std::string single = format_cloud_up(*one, "ami-1");
  EXPECT_NE(single.find("zone nimbus-west-1a, 1 host\n"), std::string::npos);
  EXPECT_NE(single.find("`nimbus cloud down`"), std::string::npos);
}

}  // namespace
}  // namespace nimbus::cli
