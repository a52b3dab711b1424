// Fuzzes the inputs of `nimbus cloud simulate` (docs/simulation-formats.md): the trace CSV
// (sim_workload.h parse_trace), the data center JSON (sim_datacenter.h parse_datacenter) and
// the scenario JSON (sim_scenario.h parse_scenario, base directory "/nonexistent"), and runs
// what parses through the engine (sim_engine.h simulate) when it is small enough to be fast.
//
// Input: byte 0 % 3 picks the parser, the rest is the file's text.
//   0: a trace; it must survive trace_csv -> parse_trace unchanged, and (at most 2000 events)
//      runs on a small fixed data center under every policy.
//   1: a data center; (at most 64 hosts) it runs a small fixed workload under every policy.
//   2: a scenario; (at most 256 hosts, 2000 events) it runs with its own settings.
// The parsers' limits are generous for real runs (a million hosts, 100 million generated
// events); the fuzzer keeps to small ones so that one input stays fast: a scenario's
// generator gets max_events 2000 at most, a consolidation workload of more than ~5000
// events or a data center of more than 10,000 hosts is skipped, and a scenario's file names
// are kept inside the nonexistent base directory (no absolute paths, no "..").
// Every simulation's result is checked for what must hold whatever the input.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cloud/instance_types.h"
#include "cloud/sim_datacenter.h"
#include "cloud/sim_engine.h"
#include "cloud/sim_scenario.h"
#include "cloud/sim_workload.h"

namespace {

namespace sim = nimbus::cloud::sim;
using nlohmann::json;

constexpr size_t kMaxEvents = 2000;
constexpr double kMaxSamples = 10'000;
constexpr uint64_t kMaxRunHosts = 256;

#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// With SIM_FUZZ_STATS set, how far the inputs got, printed at exit (for the plain driver,
// which has no coverage to show).
struct Stats {
  uint64_t parsed[3] = {}, simulated = 0, simulate_errors = 0;
  ~Stats() {
    if (std::getenv("SIM_FUZZ_STATS") != nullptr)
      std::fprintf(
          stderr,
          "sim_input_fuzz: parsed %llu traces, %llu data centers, %llu scenarios; "
          "%llu simulations (%llu refused by simulate)\n",
          static_cast<unsigned long long>(parsed[0]), static_cast<unsigned long long>(parsed[1]),
          static_cast<unsigned long long>(parsed[2]), static_cast<unsigned long long>(simulated),
          static_cast<unsigned long long>(simulate_errors));
  }
} g_stats;

const std::vector<nimbus::cloud::InstanceType>& types() {
  static const std::vector<nimbus::cloud::InstanceType> t = nimbus::cloud::default_instance_types();
  return t;
}

const sim::DataCenter& fixed_datacenter() {
  static const sim::DataCenter dc = [] {
    auto r = sim::parse_datacenter(R"({"name": "fuzz", "zones": [
      {"name": "sim-1a", "hosts": [{"shape": "s", "count": 3, "cpus": 4, "memory_mib": 16384,
                                    "cpu_overcommit": 2.0, "vm_overhead_mib": 32}]},
      {"name": "sim-1b", "hosts": [{"shape": "b", "count": 2, "cpus": 8, "memory_mib": 32768,
                                    "disk_mib": 100000, "idle_fraction": 0.5}]}]})");
    if (!r.ok()) __builtin_trap();
    return *r;
  }();
  return dc;
}

const sim::Workload& fixed_workload() {
  static const sim::Workload w = [] {
    auto r = sim::parse_trace(std::string(sim::kTraceHeader) +
                                  "\n0,launch,a,t3.medium,,,,,,,,0.2\n"
                                  "0,launch,b,,2,4096,,,g,spread,,0.5\n"
                                  "10,launch,c,,1,1024,,,g,spread,,1\n"
                                  "20,launch,d,t3.xlarge,,,,,p,partition,2,0.3\n"
                                  "30,util,a,,,,,,,,,0.9\n"
                                  "40,terminate,b\n"
                                  "50,launch,e,,64,1000000,,,,,,0\n"
                                  "60,terminate,a\n"
                                  "3600,util,c,,,,,,,,,0\n",
                              "fixed");
    if (!r.ok()) __builtin_trap();
    return *r;
  }();
  return w;
}

bool sane(double v) { return std::isfinite(v) && v >= 0; }

// What a run must give whatever its input.
void check_result(const sim::SimResult& r, const sim::DataCenter& dc, const sim::Workload& w,
                  const sim::SimOptions& o) {
  uint64_t launches = 0;
  for (const sim::Event& e : w.events) launches += e.kind == sim::EventKind::kLaunch;
  CHECK(r.hosts == sim::host_count(dc));
  CHECK(r.events == w.events.size());
  CHECK(r.policies.size() == o.policies.size());
  for (const sim::PolicyResult& p : r.policies) {
    CHECK(p.launches == launches);
    CHECK(p.refused <= p.launches);
    CHECK(p.terminations <= p.launches);
    CHECK(p.placements.size() == launches);
    CHECK(!p.samples.empty());
    CHECK(sane(p.energy_kwh) && sane(p.mean_hosts_on) && sane(p.mean_lower_bound));
    CHECK(sane(p.mean_cpu_used) && p.mean_cpu_used <= 1 + 1e-9);
    CHECK(p.peak_hosts_on <= r.hosts);
    CHECK(p.mean_hosts_on <= r.hosts + 1e-6);
    if (p.policy != sim::Policy::kConsolidate) CHECK(p.migrations == 0);
    double last = -1;
    for (const sim::Sample& s : p.samples) {
      CHECK(s.time_s >= last);
      last = s.time_s;
      CHECK(s.hosts_on <= r.hosts && s.hosts_on <= p.peak_hosts_on);
      CHECK(sane(s.lower_bound) && s.lower_bound <= r.hosts);
      CHECK(sane(s.cpu_allocated) && sane(s.cpu_used) && s.cpu_used <= 1 + 1e-9);
      CHECK(sane(s.memory_allocated) && sane(s.power_w));
      CHECK(s.refused <= p.refused && s.migrations <= p.migrations);
      CHECK(s.instances <= launches);
      if (s.hosts_on == 0) CHECK(s.power_w == 0 && s.instances == 0);
    }
  }
}

void run(const sim::DataCenter& dc, const sim::Workload& w, sim::SimOptions o) {
  if (w.events.size() > kMaxEvents || sim::host_count(dc) > kMaxRunHosts) return;
  const double duration = std::max(w.duration_s, w.events.empty() ? 0 : w.events.back().time_s);
  if (!std::isfinite(duration)) return;
  if (duration / o.sample_interval_s > kMaxSamples) return;
  if (duration / o.consolidate_interval_s > kMaxSamples) return;
  o.record_placements = true;
  auto r = sim::simulate(dc, w, types(), o);
  ++g_stats.simulated;
  if (r.ok()) {
    check_result(*r, dc, w, o);
  } else {
    ++g_stats.simulate_errors;
  }
}

sim::SimOptions options_for(double duration, uint8_t selector) {
  sim::SimOptions o;
  o.policies = {sim::Policy::kSpread, sim::Policy::kPack, sim::Policy::kConsolidate,
                sim::Policy::kDedicated};
  // A small interval, made larger for long runs so that a run stays ~10,000 samples.
  o.sample_interval_s = std::max(1.0 + (selector >> 2), duration / kMaxSamples);
  o.consolidate_interval_s = std::max(5.0 * o.sample_interval_s, duration / kMaxSamples);
  o.consolidate_threshold = (selector >> 2) / 63.0;
  return o;
}

void fuzz_trace(uint8_t selector, const std::string& text) {
  auto w = sim::parse_trace(text, "fuzz");
  if (!w.ok()) return;
  ++g_stats.parsed[0];
  CHECK(sane(w->duration_s));
  // The writer gives the events back exactly.
  auto again = sim::parse_trace(sim::trace_csv(*w), "fuzz");
  CHECK(again.ok());
  CHECK(again->events.size() == w->events.size());
  for (size_t i = 0; i < w->events.size(); ++i) {
    const sim::Event &a = w->events[i], &b = again->events[i];
    CHECK(a.time_s == b.time_s && a.kind == b.kind && a.instance == b.instance &&
          a.instance_type == b.instance_type && a.vcpus == b.vcpus &&
          a.memory_mib == b.memory_mib && a.disk_mib == b.disk_mib && a.zone == b.zone &&
          a.group == b.group && a.group_strategy == b.group_strategy &&
          a.partition_count == b.partition_count && a.cpu == b.cpu);
  }
  run(fixed_datacenter(), *w, options_for(w->duration_s, selector));
}

// The hosts a data center JSON asks for, before parsing it (to skip the huge ones).
uint64_t requested_hosts(const json& doc) {
  uint64_t n = 0;
  if (!doc.is_object()) return 0;
  auto zones = doc.find("zones");
  if (zones == doc.end() || !zones->is_array()) return 0;
  for (const json& z : *zones) {
    if (!z.is_object() || !z.contains("hosts") || !z["hosts"].is_array()) continue;
    for (const json& h : z["hosts"]) {
      if (h.is_object() && h.contains("count") && h["count"].is_number_unsigned())
        n += std::min<uint64_t>(h["count"].get<uint64_t>(), uint64_t{1} << 40);
    }
  }
  return n;
}

void fuzz_datacenter(uint8_t selector, const std::string& text) {
  const json doc = json::parse(text, nullptr, false);
  if (!doc.is_discarded() && requested_hosts(doc) > 10'000) return;
  auto dc = sim::parse_datacenter(text);
  if (!dc.ok()) return;
  ++g_stats.parsed[1];
  for (const sim::Zone& z : dc->zones) {
    for (const sim::HostShape& h : z.hosts) CHECK(h.ids.size() == h.count);
  }
  if (sim::host_count(*dc) <= 64)
    run(*dc, fixed_workload(), options_for(fixed_workload().duration_s, selector));
}

bool keep_local(json& file) {
  if (!file.is_string()) return false;
  const std::string f = file.get<std::string>();
  if (!f.empty() && (f.front() == '/' || f.find("..") != std::string::npos)) {
    file = "x";
    return true;
  }
  return false;
}

// Bounds a scenario's cost (see the top). Returns false to skip the input.
bool bound_scenario(json& doc, bool& changed) {
  if (!doc.is_object()) return true;
  if (auto dc = doc.find("datacenter"); dc != doc.end() && requested_hosts(*dc) > 10'000)
    return false;
  if (auto f = doc.find("datacenter_file"); f != doc.end()) changed |= keep_local(*f);
  auto w = doc.find("workload");
  if (w == doc.end() || !w->is_object()) return true;
  if (auto t = w->find("trace"); t != w->end()) changed |= keep_local(*t);
  if (auto g = w->find("generator"); g != w->end() && g->is_object()) {
    auto m = g->find("max_events");
    if (m == g->end() || !m->is_number_unsigned() || m->get<uint64_t>() > kMaxEvents) {
      (*g)["max_events"] = kMaxEvents;
      changed = true;
    }
  }
  if (auto c = w->find("consolidation"); c != w->end() && c->is_object()) {
    auto num = [&](const json& o, const char* key, double dflt) {
      auto it = o.find(key);
      return it != o.end() && it->is_number() ? it->get<double>() : dflt;
    };
    const double apps = num(*c, "apps", 0);
    const double duration = num(*c, "duration_s", num(doc, "duration_s", 86400));
    const double util = num(*c, "util_interval_s", 3600);
    const double per_app = util > 0 ? 1 + duration / util : 1;
    if (!(apps * per_app <= 5000)) return false;
  }
  return true;
}

void fuzz_scenario(uint8_t selector, const std::string& text) {
  std::string input = text;
  json doc = json::parse(text, nullptr, false);
  if (!doc.is_discarded()) {
    bool changed = false;
    if (!bound_scenario(doc, changed)) return;
    if (changed) input = doc.dump();
  }
  auto sc = sim::parse_scenario(input, "/nonexistent");
  if (!sc.ok()) return;
  ++g_stats.parsed[2];
  sim::SimOptions o = options_for(sc->workload.duration_s, selector);
  if (!sc->policies.empty()) {
    o.policies.clear();
    for (const std::string& name : sc->policies) {
      auto p = sim::parse_policy(name);
      CHECK(p.ok());
      o.policies.push_back(*p);
    }
  }
  if (sc->sample_interval_s > 0) o.sample_interval_s = sc->sample_interval_s;
  if (sc->consolidate_interval_s > 0) o.consolidate_interval_s = sc->consolidate_interval_s;
  if (sc->consolidate_threshold >= 0) o.consolidate_threshold = sc->consolidate_threshold;
  run(sc->dc, sc->workload, o);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0:
      fuzz_trace(data[0], text);
      break;
    case 1:
      fuzz_datacenter(data[0], text);
      break;
    default:
      fuzz_scenario(data[0], text);
      break;
  }
  return 0;
}
