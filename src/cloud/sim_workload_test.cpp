#include "cloud/sim_workload.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

namespace nimbus::cloud::sim {
namespace {

const std::string kHeader = std::string(kTraceHeader) + "\n";

TEST(SimTrace, ParsesEventsCommentsAndDefaults) {
  Result<Workload> w = parse_trace("# a comment\n\n" + kHeader +
                                       "0,launch,web-1,t3.medium,,,,sim-1a,g1,spread,,0.25\n"
                                       "0,launch,db-1,,4,8192,100,,pg,partition,3,\n"
                                       "10.5,util,web-1,,,,,,,,,1\n"
                                       "  # indented comment\r\n"
                                       "20,terminate,web-1\r\n"
                                       "30,util,db-1,,,,,,,,,0.5\n",
                                   "t");
  ASSERT_TRUE(w.ok()) << w.message();
  EXPECT_EQ(w->name, "t");
  ASSERT_EQ(w->events.size(), 5u);
  const Event& a = w->events[0];
  EXPECT_EQ(a.kind, EventKind::kLaunch);
  EXPECT_EQ(a.instance, "web-1");
  EXPECT_EQ(a.instance_type, "t3.medium");
  EXPECT_EQ(a.zone, "sim-1a");
  EXPECT_EQ(a.group, "g1");
  EXPECT_EQ(a.group_strategy, "spread");
  EXPECT_EQ(a.cpu, 0.25);
  const Event& b = w->events[1];
  EXPECT_EQ(b.vcpus, 4u);
  EXPECT_EQ(b.memory_mib, 8192u);
  EXPECT_EQ(b.disk_mib, 100u);
  EXPECT_EQ(b.partition_count, 3u);
  EXPECT_EQ(b.cpu, 0.0);
  EXPECT_EQ(w->events[2].kind, EventKind::kUtil);
  EXPECT_EQ(w->events[2].time_s, 10.5);
  EXPECT_EQ(w->events[2].cpu, 1.0);
  EXPECT_EQ(w->events[3].kind, EventKind::kTerminate);
  EXPECT_EQ(w->duration_s, 30.0);
}

TEST(SimTrace, HeaderOnlyIsAnEmptyWorkload) {
  Result<Workload> w = parse_trace(kHeader, "empty");
  ASSERT_TRUE(w.ok()) << w.message();
  EXPECT_TRUE(w->events.empty());
  EXPECT_EQ(w->duration_s, 0.0);
}

void expect_line_error(const std::string& body, int line, const std::string& needle) {
  Result<Workload> w = parse_trace(kHeader + body, "t");
  ASSERT_FALSE(w.ok()) << body;
  EXPECT_EQ(w.code(), Code::kInvalidArgument);
  EXPECT_NE(w.message().find("line " + std::to_string(line)), std::string::npos) << w.message();
  EXPECT_NE(w.message().find(needle), std::string::npos) << w.message();
}

TEST(SimTrace, HostileInputNamesTheLineAndField) {
  const std::string l = "0,launch,a,t3.micro\n";
  expect_line_error("garbage\n", 2, "time_s");
  expect_line_error("\x01\xff,,,\n", 2, "time_s");
  expect_line_error("nan,launch,a,t3.micro\n", 2, "finite");
  expect_line_error("inf,launch,a,t3.micro\n", 2, "finite");
  expect_line_error("1e400,launch,a,t3.micro\n", 2, "time_s");
  expect_line_error("-1,launch,a,t3.micro\n", 2, "time_s");
  expect_line_error("1e11,launch,a,t3.micro\n", 2, "time_s");
  expect_line_error("5,launch,a,t3.micro\n4,launch,b,t3.micro\n", 3, "decrease");
  expect_line_error(l + "1,launch,a,t3.micro\n", 3, "'a' is launched twice");
  expect_line_error(l + "1,reboot,a\n", 3, "'reboot' is not launch");
  expect_line_error("0,launch,\"a\",t3.micro\n", 2, "quotes");
  expect_line_error("0,launch,a\n", 2, "needs a type");
  expect_line_error("0,launch,a,,4\n", 2, "needs a type");
  expect_line_error("0,launch,a,,99999999999999999999999,1\n", 2, "vcpus");
  expect_line_error("0,launch,a,,300000,1\n", 2, "vcpus");
  expect_line_error("0,launch,a,,-1,1\n", 2, "vcpus");
  expect_line_error("0,launch,a,,2,1.5\n", 2, "memory_mib");
  expect_line_error("0,launch,a,t3.micro,,,,,,,,1.5\n", 2, "cpu");
  expect_line_error("0,launch,a,t3.micro,,,,,,,,nan\n", 2, "cpu");
  expect_line_error("0,launch,a,t3.micro,,,,,,,,,extra\n", 2, "columns");
  expect_line_error("0,launch,a,t3 micro\n", 2, "type");
  expect_line_error("0,launch,,t3.micro\n", 2, "instance");
  expect_line_error("0,launch,a,t3.micro,,,,,g\n", 2, "group_strategy");
  expect_line_error("0,launch,a,t3.micro,,,,,g,ring\n", 2, "group_strategy");
  expect_line_error("0,launch,a,t3.micro,,,,,g,spread,3\n", 2, "partitions");
  expect_line_error(l + "1,terminate,b\n", 3, "'b' was not launched");
  expect_line_error(l + "1,terminate,a\n2,terminate,a\n", 4, "terminated before");
  expect_line_error(l + "1,terminate,a\n2,util,a,,,,,,,,,0.1\n", 4, "terminated before");
  expect_line_error(l + "1,util,a\n", 3, "needs cpu");
  expect_line_error(l + "1,util,a,t3.micro,,,,,,,,0.1\n", 3, "column 4");
  expect_line_error(l + "1,terminate,a,,,,,,,,,0.5\n", 3, "no cpu");
  // A wrong header, or none: the first data line is taken for one.
  Result<Workload> w = parse_trace("time,event\n0,launch,a,t3.micro\n", "t");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.message().find("line 1"), std::string::npos) << w.message();
  EXPECT_NE(w.message().find("header"), std::string::npos) << w.message();
  w = parse_trace("# only comments\n", "t");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.message().find("header line"), std::string::npos) << w.message();
  EXPECT_EQ(parse_trace("", "t").code(), Code::kInvalidArgument);
}

TEST(SimTrace, LoadReportsMissingFile) {
  EXPECT_EQ(load_trace("/nonexistent/t.csv").code(), Code::kNotFound);
}

bool same_events(const Workload& a, const Workload& b) {
  if (a.events.size() != b.events.size()) return false;
  for (size_t i = 0; i < a.events.size(); ++i) {
    const Event &x = a.events[i], &y = b.events[i];
    if (x.time_s != y.time_s || x.kind != y.kind || x.instance != y.instance ||
        x.instance_type != y.instance_type || x.vcpus != y.vcpus || x.memory_mib != y.memory_mib ||
        x.disk_mib != y.disk_mib || x.zone != y.zone || x.group != y.group ||
        x.group_strategy != y.group_strategy || x.partition_count != y.partition_count ||
        x.cpu != y.cpu)
      return false;
  }
  return true;
}

GeneratorOptions small_options() {
  GeneratorOptions o;
  o.seed = 42;
  o.duration_s = 2 * 86400;
  o.arrivals_per_hour = 200;
  o.lifetime_mean_s = 4 * 3600;
  o.types = {{"t3.medium", 3}, {"t3.large", 1}};
  o.zones = {"z1", "z2"};
  o.diurnal_amplitude = 0.5;
  o.util_interval_s = 1800;
  o.group_share = 0.1;
  o.group_strategy = "partition";
  return o;
}

TEST(SimTrace, TraceCsvRoundTrips) {
  Result<Workload> w = generate(small_options());
  ASSERT_TRUE(w.ok()) << w.message();
  ASSERT_GT(w->events.size(), 1000u);
  const std::string csv = trace_csv(*w);
  Result<Workload> back = parse_trace(csv, w->name);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_TRUE(same_events(*w, *back));
  // Written again, the same text (after the comment line, which says the duration).
  const std::string again = trace_csv(*back);
  const std::string body = csv.substr(csv.find('\n')), body_again = again.substr(again.find('\n'));
  size_t diff = 0;
  while (diff < body.size() && diff < body_again.size() && body[diff] == body_again[diff]) ++diff;
  EXPECT_EQ(body.size(), body_again.size());
  EXPECT_EQ(diff, body.size()) << body.substr(diff > 80 ? diff - 80 : 0, 160);
  // Odd doubles survive too (shortest round-trip form).
  Workload odd;
  odd.name = "odd";
  Event e;
  e.time_s = 0.1 + 0.2;
  e.instance = "x";
  e.vcpus = 3;
  e.memory_mib = 777;
  e.cpu = 1.0 / 3;
  odd.events.push_back(e);
  Result<Workload> odd_back = parse_trace(trace_csv(odd), "odd");
  ASSERT_TRUE(odd_back.ok()) << odd_back.message();
  EXPECT_TRUE(same_events(odd, *odd_back));
}

TEST(SimGenerator, SameSeedSameEventsOtherSeedOthers) {
  GeneratorOptions o = small_options();
  Result<Workload> a = generate(o), b = generate(o);
  o.seed = 43;
  Result<Workload> c = generate(o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(same_events(*a, *b));
  EXPECT_FALSE(same_events(*a, *c));
  // Pin the stream (std::mt19937_64 is specified exactly; the draws are ours): a change
  // here changes every generated workload.
  EXPECT_EQ(a->events[0].instance, "i-00000001");
  EXPECT_EQ(a->events[0].kind, EventKind::kLaunch);
}

TEST(SimGenerator, EventsAreSortedAndConsistent) {
  GeneratorOptions o = small_options();
  Result<Workload> w = generate(o);
  ASSERT_TRUE(w.ok()) << w.message();
  EXPECT_EQ(w->duration_s, o.duration_s);
  std::map<std::string, double> launched;
  std::set<std::string> ended;
  std::set<std::string> groups;
  double last = 0;
  uint64_t launches = 0, terminates = 0, utils = 0;
  for (const Event& e : w->events) {
    ASSERT_GE(e.time_s, last);
    ASSERT_LT(e.time_s, o.duration_s);
    last = e.time_s;
    ASSERT_GE(e.cpu, 0.0);
    ASSERT_LE(e.cpu, 1.0);
    if (e.kind == EventKind::kLaunch) {
      ++launches;
      ASSERT_TRUE(launched.emplace(e.instance, e.time_s).second);
      ASSERT_TRUE(e.zone == "z1" || e.zone == "z2");
      ASSERT_TRUE(e.instance_type == "t3.medium" || e.instance_type == "t3.large");
      if (!e.group.empty()) {
        EXPECT_EQ(e.group_strategy, "partition");
        EXPECT_EQ(e.partition_count, 3u);
        groups.insert(e.group);
      }
    } else {
      ASSERT_TRUE(launched.count(e.instance));
      ASSERT_FALSE(ended.count(e.instance));
      if (e.kind == EventKind::kTerminate) {
        ++terminates;
        ended.insert(e.instance);
      } else {
        ++utils;
      }
    }
  }
  // 200 an hour for 48 h: 9600 expected, sd ~98.
  EXPECT_NEAR(static_cast<double>(launches), 9600, 400);
  // Exponential lifetimes of mean 4 h over 48 h: most end within the run.
  EXPECT_GT(terminates, launches * 8 / 10);
  EXPECT_LT(terminates, launches);
  EXPECT_GT(utils, launches);
  EXPECT_GE(groups.size(), 100u);  // ~960 grouped launches in groups of 7
}

TEST(SimGenerator, LifetimeAndArrivalDistributions) {
  // Lifetimes measured from launch to terminate, on a run long enough that almost all end.
  for (LifetimeKind kind : {LifetimeKind::kExponential, LifetimeKind::kLognormal}) {
    GeneratorOptions o;
    o.seed = 7;
    o.arrivals_per_hour = 3600;  // one a second
    o.duration_s = 200'000;
    o.lifetime = kind;
    o.lifetime_mean_s = 100;
    o.lifetime_median_s = 100;
    o.lifetime_sigma = 0.5;
    Result<Workload> w = generate(o);
    ASSERT_TRUE(w.ok()) << w.message();
    std::map<std::string, double> start;
    std::vector<double> lives;
    uint64_t launches = 0;
    for (const Event& e : w->events) {
      if (e.kind == EventKind::kLaunch) {
        start[e.instance] = e.time_s;
        ++launches;
      } else if (e.kind == EventKind::kTerminate) {
        lives.push_back(e.time_s - start[e.instance]);
      }
    }
    EXPECT_NEAR(static_cast<double>(launches), 200'000, 2000);  // sd ~450
    ASSERT_GT(lives.size(), 199'000u);
    double sum = 0;
    for (double l : lives) sum += l;
    const double mean = sum / static_cast<double>(lives.size());
    if (kind == LifetimeKind::kExponential) {
      EXPECT_NEAR(mean, 100, 2);
    } else {
      EXPECT_NEAR(mean, 100 * std::exp(0.125), 2);  // lognormal mean: median e^(s^2/2)
      std::sort(lives.begin(), lives.end());
      EXPECT_NEAR(lives[lives.size() / 2], 100, 2);
    }
  }
}

// Arrivals with a day's rhythm: 1 + a cos(...) around the peak hour, the same mean rate.
TEST(SimGenerator, DiurnalArrivalsCrowdAroundThePeakHour) {
  GeneratorOptions o;
  o.seed = 3;
  o.arrivals_per_hour = 1000;
  o.arrivals_diurnal_amplitude = 0.8;
  o.diurnal_peak_hour = 14;
  o.duration_s = 20 * 86400.0;
  o.lifetime_mean_s = 60;
  Result<Workload> w = generate(o);
  ASSERT_TRUE(w.ok()) << w.message();
  std::vector<double> per_hour(24, 0);
  uint64_t launches = 0;
  for (const Event& e : w->events) {
    if (e.kind != EventKind::kLaunch) continue;
    ++launches;
    per_hour[static_cast<size_t>(std::fmod(e.time_s, 86400) / 3600)] += 1;
  }
  EXPECT_NEAR(static_cast<double>(launches), 480'000, 4000);  // the mean rate is kept
  // Hour 14 expects 1000 * (1 + 0.8 cos(~0)) per day, hour 2 (12 h away) 1000 * 0.2.
  EXPECT_NEAR(per_hour[14] / 20, 1000 * (1 + 0.8 * std::cos(2 * M_PI * 0.5 / 24)), 60);
  EXPECT_NEAR(per_hour[2] / 20, 1000 * (1 - 0.8 * std::cos(2 * M_PI * 0.5 / 24)), 30);
  o.arrivals_diurnal_amplitude = 1.5;
  EXPECT_FALSE(generate(o).ok());
}

TEST(SimGenerator, NormalQuantile) {
  EXPECT_NEAR(normal_quantile(0.5), 0, 1e-9);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963985, 1e-6);
  EXPECT_NEAR(normal_quantile(0.001), -3.090232306, 1e-6);
  EXPECT_NEAR(normal_quantile(1 - 1e-10), 6.361340902, 1e-5);
  EXPECT_EQ(uniform01(0), 0.0);
  EXPECT_LT(uniform01(~uint64_t{0}), 1.0);
}

TEST(SimGenerator, ForeverAndNoUtilsAndNoArrivals) {
  GeneratorOptions o;
  o.lifetime = LifetimeKind::kForever;
  o.arrivals_per_hour = 60;
  o.duration_s = 3600;
  Result<Workload> w = generate(o);
  ASSERT_TRUE(w.ok()) << w.message();
  for (const Event& e : w->events) {
    EXPECT_EQ(e.kind, EventKind::kLaunch);
    EXPECT_EQ(e.zone, "");
  }
  o.arrivals_per_hour = 0;
  w = generate(o);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->events.empty());
}

TEST(SimGenerator, RejectsBadOptionsAndCapsEvents) {
  const auto invalid = [](GeneratorOptions o, const std::string& needle) {
    Result<Workload> w = generate(o);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.code(), Code::kInvalidArgument);
    EXPECT_NE(w.message().find(needle), std::string::npos) << w.message();
  };
  GeneratorOptions o;
  o.duration_s = NAN;
  invalid(o, "duration_s");
  o = {};
  o.arrivals_per_hour = -1;
  invalid(o, "arrivals_per_hour");
  o = {};
  o.types = {{"t3.micro", 0}};
  invalid(o, "weight");
  o = {};
  o.types.clear();
  invalid(o, "types");
  o = {};
  o.cpu_low = 0.6;
  o.cpu_high = 0.5;
  invalid(o, "cpu_low");
  o = {};
  o.util_interval_s = 0.001;
  invalid(o, "util_interval_s");
  o = {};
  o.group_strategy = "ring";
  invalid(o, "group_strategy");
  o = {};
  o.lifetime_sigma = INFINITY;
  invalid(o, "lifetime_sigma");
  o = {};
  o.arrivals_per_hour = 1e6;
  o.max_events = 1000;
  invalid(o, "max_events");
}

TEST(SimGenerator, ConsolidationWorkload) {
  Workload w = consolidation_workload(100, "t3.medium", 86400, 0.1, 0.3, 0.5, 3600, 9);
  // 100 launches at 0, then 23 utils each (1 h .. 23 h); no terminates.
  ASSERT_EQ(w.events.size(), 100u * 24);
  EXPECT_EQ(w.duration_s, 86400.0);
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(w.events[i].kind, EventKind::kLaunch);
    EXPECT_EQ(w.events[i].time_s, 0.0);
    EXPECT_EQ(w.events[i].instance_type, "t3.medium");
  }
  EXPECT_EQ(w.events[0].instance, "app-0001");
  EXPECT_EQ(w.events[99].instance, "app-0100");
  // The diurnal pattern: the fleet uses more CPU at 14:00 than at 02:00.
  double at2 = 0, at14 = 0;
  for (const Event& e : w.events) {
    EXPECT_NE(e.kind, EventKind::kTerminate);
    EXPECT_LE(e.cpu, 0.3 * 1.5 + 1e-4);
    if (e.time_s == 2 * 3600) at2 += e.cpu;
    if (e.time_s == 14 * 3600) at14 += e.cpu;
  }
  EXPECT_GT(at14, 2 * at2);
  Workload again = consolidation_workload(100, "t3.medium", 86400, 0.1, 0.3, 0.5, 3600, 9);
  EXPECT_TRUE(same_events(w, again));
}

}  // namespace
}  // namespace nimbus::cloud::sim
