#include "cloud/sim_scenario.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cloud/sim_datacenter.h"
#include "cloud/sim_workload.h"

namespace nimbus::cloud::sim {
namespace {

class ScenarioDir {
 public:
  ScenarioDir() {
    char tmpl[] = "/tmp/nimbus-scenario-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  ~ScenarioDir() { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
    return path;
  }

 private:
  std::string dir_;
};

const char* kDc = R"({"name": "small", "zones": [
    {"name": "z1", "hosts": [{"shape": "s", "count": 3, "cpus": 8, "memory_mib": 32768}]},
    {"name": "z2", "hosts": [{"shape": "s", "count": 3, "cpus": 8, "memory_mib": 32768}]}]})";

TEST(SimScenario, TraceFileRelativeToTheScenario) {
  ScenarioDir d;
  d.write("data/dc.json", kDc);
  d.write("data/t.csv", std::string(kTraceHeader) + "\n0,launch,a,t3.micro,,,,z1\n5,terminate,a\n");
  const std::string path = d.write("scen/run.json", R"({"name": "run",
      "datacenter_file": "../data/dc.json", "workload": {"trace": "../data/t.csv"},
      "duration_s": 100,
      "simulation": {"policies": ["pack", "dedicated"], "sample_interval_s": 10}})");
  Result<Scenario> sc = load_scenario(path);
  ASSERT_TRUE(sc.ok()) << sc.message();
  EXPECT_EQ(sc->name, "run");
  EXPECT_EQ(sc->dc.name, "small");
  ASSERT_EQ(sc->workload.events.size(), 2u);
  EXPECT_EQ(sc->workload.name, "t");
  EXPECT_EQ(sc->workload.duration_s, 100.0);
  EXPECT_EQ(sc->policies, (std::vector<std::string>{"pack", "dedicated"}));
  EXPECT_EQ(sc->sample_interval_s, 10.0);
  EXPECT_LT(sc->consolidate_interval_s, 0);
  EXPECT_LT(sc->consolidate_threshold, 0);
}

TEST(SimScenario, InlineDataCenterAndGenerator) {
  const std::string text = std::string(R"({"name": "gen", "datacenter": )") + kDc + R"(,
      "duration_s": 7200,
      "workload": {"generator": {"seed": 5, "arrivals_per_hour": 100, "lifetime": "lognormal",
                   "lifetime_median_s": 600, "lifetime_sigma": 1, "zones": "all",
                   "types": {"t3.micro": 1, "t3.small": 2}, "util_interval_s": 300}}})";
  Result<Scenario> sc = parse_scenario(text, "/nonexistent");
  ASSERT_TRUE(sc.ok()) << sc.message();
  EXPECT_EQ(sc->workload.duration_s, 7200.0);
  EXPECT_GT(sc->workload.events.size(), 100u);
  EXPECT_TRUE(sc->policies.empty());
  bool z1 = false, z2 = false;
  for (const Event& e : sc->workload.events) {
    z1 = z1 || e.zone == "z1";
    z2 = z2 || e.zone == "z2";
  }
  EXPECT_TRUE(z1 && z2);
  // The same scenario generates the same workload.
  Result<Scenario> again = parse_scenario(text, "/nonexistent");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(trace_csv(sc->workload), trace_csv(again->workload));
}

TEST(SimScenario, Consolidation) {
  const std::string text = std::string(R"({"datacenter": )") + kDc + R"(,
      "workload": {"consolidation": {"apps": 10, "type": "t3.medium", "util_interval_s": 0}}})";
  Result<Scenario> sc = parse_scenario(text, "");
  ASSERT_TRUE(sc.ok()) << sc.message();
  EXPECT_EQ(sc->workload.events.size(), 10u);
  EXPECT_EQ(sc->workload.duration_s, 86400.0);
}

void expect_invalid(const std::string& rest, const std::string& needle) {
  const std::string text = std::string(R"({"datacenter": )") + kDc + "," + rest + "}";
  Result<Scenario> sc = parse_scenario(text, "/nonexistent");
  ASSERT_FALSE(sc.ok()) << rest;
  EXPECT_NE(sc.message().find(needle), std::string::npos) << sc.message();
}

TEST(SimScenario, RejectsTyposAndBadValues) {
  const std::string gen = R"("workload": {"generator": {"duration_s": 60}})";
  expect_invalid(gen + R"(, "simulaton": {})", "unknown key 'simulaton'");
  expect_invalid(R"("workload": {"generator": {"duration_s": 60, "arrival_per_hour": 5}})",
                 "unknown key 'arrival_per_hour'");
  expect_invalid(R"("workload": {"generator": {}})", "'duration_s' is needed");
  expect_invalid(R"("workload": {"generator": {"duration_s": 60, "zones": ["z9"]}})",
                 "zone 'z9' is not in the data center");
  expect_invalid(R"("workload": {"generator": {"duration_s": 60, "lifetime": "long"}})",
                 "'lifetime'");
  expect_invalid(R"("workload": {"generator": {"duration_s": 60, "cpu_low": 2}})", "cpu_low");
  expect_invalid(R"("workload": {"trace": "x.csv", "generator": {}})", "one of");
  expect_invalid(R"("workload": {"consolidation": {"type": "t3.medium"}})", "'apps'");
  expect_invalid(gen + R"(, "simulation": {"policies": ["binpack"]})", "binpack");
  expect_invalid(gen + R"(, "simulation": {"policies": ["pack", "pack"]})", "twice");
  expect_invalid(gen + R"(, "simulation": {"sample_interval_s": 0})", "sample_interval_s");
  expect_invalid(gen + R"(, "simulation": {"consolidate_threshold": 2})", "threshold");
  expect_invalid(gen + R"(, "duration_s": -5)", "duration_s");
  expect_invalid(gen + R"(, "datacenter_file": "dc.json")", "exactly one");
  expect_invalid(R"("workload": {"trace": "missing.csv"})", "missing.csv");
  Result<Scenario> sc = parse_scenario("{", "");
  EXPECT_EQ(sc.code(), Code::kInvalidArgument);
  EXPECT_EQ(load_scenario("/nonexistent/s.json").code(), Code::kNotFound);
}

// The example files shipped under docs/simulation/ load (the large one is generated in full).
TEST(SimScenario, ShippedExamplesLoad) {
  // This file is src/cloud/sim_scenario_test.cpp (compiled by its absolute path).
  const std::string root =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().string() +
      "/docs/simulation/scenarios/";
  for (const char* name : {"trace-example.json", "consolidation.json"}) {
    Result<Scenario> sc = load_scenario(root + name);
    ASSERT_TRUE(sc.ok()) << name << ": " << sc.message();
    EXPECT_FALSE(sc->workload.events.empty());
  }
  // The scale target: 10,000 hosts, about a million events over a week.
  Result<Scenario> big = load_scenario(root + "datacenter-10k.json");
  ASSERT_TRUE(big.ok()) << big.message();
  EXPECT_EQ(host_count(big->dc), 10'000u);
  EXPECT_EQ(big->dc.zones.size(), 4u);
  EXPECT_GT(big->workload.events.size(), 900'000u);
  EXPECT_LT(big->workload.events.size(), 1'100'000u);
  EXPECT_EQ(big->workload.duration_s, 7 * 86400.0);
}

}  // namespace
}  // namespace nimbus::cloud::sim
