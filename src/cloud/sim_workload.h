// The simulation's workloads (docs/simulation-formats.md): the trace CSV (parser and writer)
// and the generators (Poisson arrivals, and the consolidation scenario).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cloud/sim_model.h"
#include "common/status.h"

namespace nimbus::cloud::sim {

// The trace's header line, required as the first line that is not blank or a comment.
inline constexpr const char* kTraceHeader =
    "time_s,event,instance,type,vcpus,memory_mib,disk_mib,zone,group,group_strategy,partitions,"
    "cpu";

// Limits of a trace.
inline constexpr double kMaxTraceTime = 1e10;  // seconds (~317 years)
inline constexpr unsigned kMaxEventVcpus = 1u << 18;
inline constexpr uint64_t kMaxEventMemoryMib = uint64_t{1} << 40;
inline constexpr unsigned kMaxEventPartitions = 1000;
inline constexpr size_t kMaxTraceBytes = size_t{1} << 30;

// Parses a trace: one event a line under kTraceHeader; '#' lines and blank lines skipped;
// trailing empty columns may be left out; empty fields are defaults. Checks each line (times
// finite, >= 0, non-decreasing; launch with an instance and a type or vcpus + memory_mib;
// terminate/util of a running instance, with no other fields but util's cpu in [0, 1]; an
// instance launched once; no quotes) and fails with kInvalidArgument naming the line and field.
// duration_s is the last event's time.
Result<Workload> parse_trace(const std::string& csv, const std::string& name);
// The same from a file (name: the file name without directory and ".csv"); kNotFound if it
// cannot be read.
Result<Workload> load_trace(const std::string& path);
// The workload as a trace: parse_trace(trace_csv(w)) gives w's events back exactly (numbers in
// their shortest round-trip form); duration_s is not kept (a comment line says it).
std::string trace_csv(const Workload& w);

enum class LifetimeKind { kExponential, kLognormal, kForever };

struct GeneratorOptions {
  std::string name = "generated";
  uint64_t seed = 1;
  double duration_s = 86400;       // arrivals in [0, duration_s); the workload's duration
  double arrivals_per_hour = 100;  // Poisson process
  // A day's rhythm in the arrivals: the rate is arrivals_per_hour * (1 + a * cos(2 pi (t -
  // diurnal_peak_hour) / 1 day)) (a in [0, 1]; thinning of a Poisson process at the peak
  // rate), so that launches crowd in the day and the cloud empties at night.
  double arrivals_diurnal_amplitude = 0;
  LifetimeKind lifetime = LifetimeKind::kExponential;
  double lifetime_mean_s = 3600;    // exponential
  double lifetime_median_s = 3600;  // lognormal: median * exp(sigma * N(0,1))
  double lifetime_sigma = 1.0;
  // Instance types with weights (> 0), chosen in proportion to the weights.
  std::vector<std::pair<std::string, double>> types = {{"t3.medium", 1.0}};
  std::vector<std::string> zones;  // uniform over these; empty: zone "" (the scheduler chooses)
  // CPU utilisation: a mean per instance uniform in [cpu_low, cpu_high], times
  // (1 + diurnal_amplitude * cos(2 pi (t - peak) / 1 day)) clamped to [0, 1], the instance's
  // peak uniform in diurnal_peak_hour +- diurnal_peak_spread_h / 2 (hours of simulated day,
  // t = 0 being midnight). Sampled at launch, then every util_interval_s (0: never) as util
  // events while the instance lives. Values rounded to 4 decimals.
  double cpu_low = 0.1, cpu_high = 0.5;
  double diurnal_amplitude = 0.0;  // [0, 1]
  double diurnal_peak_hour = 14.0;
  double diurnal_peak_spread_h = 4.0;
  double util_interval_s = 0;
  // A share of the launches join placement groups "g1", "g2", ... of group_size members each
  // (a new group when the last is full), with this strategy; partitions for "partition".
  double group_share = 0;
  std::string group_strategy = "spread";  // cluster | spread | partition
  unsigned group_size = 7;
  unsigned group_partitions = 0;  // "partition": 1..7 (0: 3)
  // The generator fails (kInvalidArgument) rather than build more events than this.
  uint64_t max_events = 5'000'000;
};

// Checks the options (kInvalidArgument naming the option).
Status check_generator_options(const GeneratorOptions& o);

// A workload from the options: instance "i-<n>" (n from 1, 8 digits at least) launched at
// Poisson arrival times (exponential gaps, rate arrivals_per_hour / 3600, first gap from 0),
// living its drawn lifetime; a terminate at the end of the lifetime when that is before
// duration_s; util events as above. Times rounded to milliseconds; events sorted by time
// (terminates and utils before launches at the same time). Deterministic for a seed.
Result<Workload> generate(const GeneratorOptions& o);

// The seed's scenario: `apps` instances "app-<n>" of `type`, all launched at t = 0 into zone ""
// and living the whole run, CPU as in GeneratorOptions (mean uniform in [cpu_low, cpu_high],
// the diurnal pattern peaking at 14:00 +- 2 h), a util event every util_interval_s (0: never).
// Assumes valid arguments (check_generator_options's rules for the CPU fields).
Workload consolidation_workload(unsigned apps, const std::string& type, double duration_s,
                                double cpu_low, double cpu_high, double diurnal_amplitude,
                                double util_interval_s, uint64_t seed);

// The portable random draws the generators use, exposed for their tests.
// A uniform double in [0, 1) from the top 53 bits of a 64-bit word.
double uniform01(uint64_t word);
// The standard normal's inverse CDF (Acklam's rational approximation, |rel. error| < 1.2e-9)
// for p in (0, 1).
double normal_quantile(double p);

}  // namespace nimbus::cloud::sim
