#include "cloud/sim_datacenter.h"

#include <gtest/gtest.h>

#include <string>

namespace nimbus::cloud::sim {
namespace {

TEST(SimDataCenter, ParsesDefaultsAndGeneratesIds) {
  Result<DataCenter> dc = parse_datacenter(R"({"name": "dc1", "zones": [
      {"name": "z-a", "hosts": [{"shape": "std", "count": 12, "cpus": 64, "memory_mib": 262144,
                                  "cpu_overcommit": 2.0, "vm_overhead_mib": 32}]},
      {"name": "z-b", "hosts": [{"shape": "big", "count": 2, "cpus": 96, "memory_mib": 393216,
                                  "ids": ["h1", "h2"], "peak_watts": 400, "idle_fraction": 0.5}]}]})");
  ASSERT_TRUE(dc.ok()) << dc.message();
  EXPECT_EQ(dc->name, "dc1");
  ASSERT_EQ(dc->zones.size(), 2u);
  const HostShape& s = dc->zones[0].hosts[0];
  EXPECT_EQ(s.count, 12u);
  EXPECT_EQ(s.cpus, 64u);
  EXPECT_EQ(s.cpu_overcommit, 2.0);
  EXPECT_EQ(s.memory_overcommit, 1.0);
  EXPECT_EQ(s.vm_overhead_mib, 32u);
  EXPECT_EQ(s.peak_watts, 250.0);
  EXPECT_EQ(s.idle_fraction, 0.7);
  ASSERT_EQ(s.ids.size(), 12u);
  EXPECT_EQ(s.ids[0], "z-a-std-01");
  EXPECT_EQ(s.ids[11], "z-a-std-12");
  EXPECT_EQ(dc->zones[1].hosts[0].ids, (std::vector<std::string>{"h1", "h2"}));
  EXPECT_EQ(dc->zones[1].hosts[0].idle_fraction, 0.5);
  EXPECT_EQ(host_count(*dc), 14u);
  EXPECT_EQ(generated_host_id("z", "s", 7, 2500), "z-s-0007");
}

void expect_invalid(const std::string& json, const std::string& needle) {
  Result<DataCenter> dc = parse_datacenter(json);
  ASSERT_FALSE(dc.ok()) << json;
  EXPECT_EQ(dc.code(), Code::kInvalidArgument);
  EXPECT_NE(dc.message().find(needle), std::string::npos) << dc.message();
}

std::string one_shape(const std::string& fields) {
  return R"({"zones": [{"name": "z", "hosts": [{"shape": "s", )" + fields + "}]}]}";
}

TEST(SimDataCenter, RejectsBadInput) {
  expect_invalid("{", "not valid JSON");
  expect_invalid("[]", "JSON object");
  expect_invalid(R"({"zones": []})", "'zones'");
  expect_invalid(R"({"zones": [{"name": "z"}]})", "'hosts'");
  expect_invalid(R"({"zone": []})", "unknown key 'zone'");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4, "memory_mib": 1, "cpu": 3)"),
                 "unknown key 'cpu'");
  expect_invalid(one_shape(R"("count": 0, "cpus": 4, "memory_mib": 1)"), "'count'");
  expect_invalid(one_shape(R"("count": -1, "cpus": 4, "memory_mib": 1)"), "'count'");
  expect_invalid(one_shape(R"("count": 1.5, "cpus": 4, "memory_mib": 1)"), "'count'");
  expect_invalid(one_shape(R"("count": 1000001, "cpus": 4, "memory_mib": 1)"), "'count'");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4097, "memory_mib": 1)"), "'cpus'");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4)"), "'memory_mib' is missing");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4, "memory_mib": 0)"), "'memory_mib'");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4, "memory_mib": 99999999999999999999999999999)"),
                 "'memory_mib'");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4, "memory_mib": 1, "cpu_overcommit": 0)"),
                 "'cpu_overcommit'");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4, "memory_mib": 1, "memory_overcommit": 65)"),
                 "'memory_overcommit'");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4, "memory_mib": 1, "cpu_overcommit": 1e999)"),
                 "");  // JSON overflow: rejected either by the parser or the range
  expect_invalid(one_shape(R"("count": 1, "cpus": 4, "memory_mib": 1, "idle_fraction": 1.5)"),
                 "'idle_fraction'");
  expect_invalid(one_shape(R"("count": 1, "cpus": 4, "memory_mib": 1, "peak_watts": -1)"),
                 "'peak_watts'");
  expect_invalid(one_shape(R"("count": 2, "cpus": 4, "memory_mib": 1, "ids": ["a"])"), "'ids'");
  expect_invalid(one_shape(R"("count": 2, "cpus": 4, "memory_mib": 1, "ids": ["a", "a"])"),
                 "host id 'a' is used twice");
  expect_invalid(R"({"zones": [{"name": "bad zone", "hosts": []}]})", "'name'");
  expect_invalid(R"({"zones": [{"name": "z", "hosts": [{"shape": "s", "count": 1, "cpus": 1,
      "memory_mib": 1}]}, {"name": "z", "hosts": [{"shape": "t", "count": 1, "cpus": 1,
      "memory_mib": 1}]}]})",
                 "zone 'z': the zone is named twice");
  // The same shape twice in a zone would generate the same ids.
  expect_invalid(R"({"zones": [{"name": "z", "hosts": [{"shape": "s", "count": 1, "cpus": 1,
      "memory_mib": 1}, {"shape": "s", "count": 1, "cpus": 1, "memory_mib": 1}]}]})",
                 "used twice");
  expect_invalid(R"({"zones": [{"name": "z", "hosts": [{"shape": "s", "count": 600000, "cpus": 1,
      "memory_mib": 1}, {"shape": "t", "count": 600000, "cpus": 1, "memory_mib": 1}]}]})",
                 "more than 1000000 hosts");
}

TEST(SimDataCenter, LoadReportsMissingFile) {
  Result<DataCenter> dc = load_datacenter("/nonexistent/dc.json");
  EXPECT_EQ(dc.code(), Code::kNotFound);
}

}  // namespace
}  // namespace nimbus::cloud::sim
