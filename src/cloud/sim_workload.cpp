#include "cloud/sim_workload.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <queue>
#include <random>
#include <string_view>
#include <unordered_map>

#include "cloud/sim_datacenter.h"

namespace nimbus::cloud::sim {
namespace {

constexpr size_t kColumns = 12;
constexpr size_t kMaxFieldLength = 128;
constexpr double kDay = 86400.0;
constexpr double kPi = 3.14159265358979323846;

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == ':' || c == '/';
}

bool valid_field_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxFieldLength) return false;
  return std::all_of(s.begin(), s.end(), name_char);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The printable start of a field for an error message.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 40) out += "...";
  return out;
}

class TraceParser {
 public:
  explicit TraceParser(const std::string& name) { w_.name = name; }

  Result<Workload> parse(const std::string& csv) {
    size_t pos = 0, line_no = 0;
    bool header = false;
    w_.events.reserve(std::min<size_t>(csv.size() / 24 + 1, 10'000'000));
    while (pos < csv.size()) {
      size_t end = csv.find('\n', pos);
      if (end == std::string::npos) end = csv.size();
      std::string_view line(csv.data() + pos, end - pos);
      pos = end + 1;
      ++line_no;
      line_ = line_no;
      const std::string_view t = trim(line);
      if (t.empty() || t.front() == '#') continue;
      if (!header) {
        if (t != kTraceHeader)
          return fail("", fmt::format("expected the header line '{}' first, got '{}'", kTraceHeader,
                                      shown(t)));
        header = true;
        continue;
      }
      if (Status s = parse_line(t); !s.ok()) return s;
    }
    if (!header)
      return Status::invalid_argument(
          fmt::format("trace '{}': the header line '{}' is missing", w_.name, kTraceHeader));
    w_.duration_s = w_.events.empty() ? 0 : w_.events.back().time_s;
    return std::move(w_);
  }

 private:
  Status fail(const char* field, const std::string& why) const {
    if (*field == 0)
      return Status::invalid_argument(fmt::format("trace '{}' line {}: {}", w_.name, line_, why));
    return Status::invalid_argument(
        fmt::format("trace '{}' line {}: field '{}': {}", w_.name, line_, field, why));
  }

  Result<double> number(std::string_view s, const char* field) const {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc::result_out_of_range) return fail(field, "out of range");
    if (ec != std::errc() || p != s.data() + s.size())
      return fail(field, fmt::format("'{}' is not a number", shown(s)));
    if (!std::isfinite(v)) return fail(field, "must be finite");
    return v;
  }

  Status whole(std::string_view s, const char* field, uint64_t max, uint64_t& out) const {
    if (s.empty()) return {};
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && v > max))
      return fail(field, fmt::format("'{}' is larger than {}", shown(s), max));
    if (ec != std::errc() || p != s.data() + s.size())
      return fail(field, fmt::format("'{}' is not a whole number >= 0", shown(s)));
    out = v;
    return {};
  }

  Status name(std::string_view s, const char* field, std::string& out) const {
    if (s.empty()) return {};
    if (!valid_field_name(s))
      return fail(field, fmt::format("'{}' must be 1 to {} characters of [A-Za-z0-9._:/-]",
                                     shown(s), kMaxFieldLength));
    out.assign(s);
    return {};
  }

  Status parse_line(std::string_view line) {
    if (line.find('"') != std::string_view::npos || line.find('\'') != std::string_view::npos)
      return fail("", "quotes are not supported (no value contains a comma)");
    std::string_view f[kColumns];
    size_t n = 0, start = 0;
    while (true) {
      const size_t comma = line.find(',', start);
      if (n == kColumns) return fail("", fmt::format("more than {} columns", kColumns));
      f[n++] = trim(line.substr(start, comma == std::string_view::npos ? comma : comma - start));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    Event e;
    if (f[0].empty()) return fail("time_s", "is empty");
    Result<double> t = number(f[0], "time_s");
    if (!t.ok()) return t.status();
    if (*t < 0 || *t > kMaxTraceTime)
      return fail("time_s", fmt::format("{} is not in [0, {}]", *t, kMaxTraceTime));
    if (!w_.events.empty() && *t < w_.events.back().time_s)
      return fail("time_s", fmt::format("{} is before the previous event's {} (times must not "
                                        "decrease)",
                                        *t, w_.events.back().time_s));
    e.time_s = *t;
    if (f[1] == "launch") {
      e.kind = EventKind::kLaunch;
    } else if (f[1] == "terminate") {
      e.kind = EventKind::kTerminate;
    } else if (f[1] == "util") {
      e.kind = EventKind::kUtil;
    } else {
      return fail("event", fmt::format("'{}' is not launch, terminate or util", shown(f[1])));
    }
    if (f[2].empty()) return fail("instance", "is empty");
    if (Status s = name(f[2], "instance", e.instance); !s.ok()) return s;
    uint64_t v = 0;
    if (e.kind == EventKind::kLaunch) {
      if (Status s = name(f[3], "type", e.instance_type); !s.ok()) return s;
      if (Status s = whole(f[4], "vcpus", kMaxEventVcpus, v); !s.ok()) return s;
      e.vcpus = static_cast<unsigned>(v);
      if (Status s = whole(f[5], "memory_mib", kMaxEventMemoryMib, e.memory_mib); !s.ok()) return s;
      if (Status s = whole(f[6], "disk_mib", kMaxEventMemoryMib, e.disk_mib); !s.ok()) return s;
      if (e.instance_type.empty() && (e.vcpus == 0 || e.memory_mib == 0))
        return fail("type", "a launch needs a type, or vcpus and memory_mib");
      if (Status s = name(f[7], "zone", e.zone); !s.ok()) return s;
      if (Status s = name(f[8], "group", e.group); !s.ok()) return s;
      if (!f[9].empty() && f[9] != "cluster" && f[9] != "spread" && f[9] != "partition")
        return fail("group_strategy",
                    fmt::format("'{}' is not cluster, spread or partition", shown(f[9])));
      e.group_strategy.assign(f[9]);
      if (e.group.empty() != e.group_strategy.empty())
        return fail("group_strategy", "group and group_strategy go together");
      v = 0;
      if (Status s = whole(f[10], "partitions", kMaxEventPartitions, v); !s.ok()) return s;
      e.partition_count = static_cast<unsigned>(v);
      if (e.partition_count != 0 && e.group_strategy != "partition")
        return fail("partitions", "only a partition group has partitions");
    } else {
      for (size_t i = 3; i < kColumns - 1; ++i) {
        if (!f[i].empty())
          return fail("", fmt::format("a {} has only time_s, instance{} (column {} is set)", f[1],
                                      e.kind == EventKind::kUtil ? " and cpu" : "", i + 1));
      }
    }
    if (e.kind == EventKind::kTerminate && !f[11].empty())
      return fail("cpu", "a terminate has no cpu");
    if (e.kind == EventKind::kUtil && f[11].empty()) return fail("cpu", "a util event needs cpu");
    if (!f[11].empty()) {
      Result<double> cpu = number(f[11], "cpu");
      if (!cpu.ok()) return cpu.status();
      if (*cpu < 0 || *cpu > 1) return fail("cpu", fmt::format("{} is not in [0, 1]", *cpu));
      e.cpu = *cpu;
    }
    // Each instance is launched once, then terminated at most once; utils while it runs.
    auto [it, inserted] = state_.try_emplace(e.instance, kRunning);
    if (e.kind == EventKind::kLaunch) {
      if (!inserted) return fail("instance", fmt::format("'{}' is launched twice", e.instance));
    } else {
      if (inserted) {
        state_.erase(it);
        return fail("instance", fmt::format("'{}' was not launched before", e.instance));
      }
      if (it->second == kEnded)
        return fail("instance", fmt::format("'{}' was terminated before", e.instance));
      if (e.kind == EventKind::kTerminate) it->second = kEnded;
    }
    w_.events.push_back(std::move(e));
    return {};
  }

  enum : uint8_t { kRunning, kEnded };
  Workload w_;
  size_t line_ = 0;
  std::unordered_map<std::string, uint8_t> state_;
};

const char* event_name(EventKind k) {
  switch (k) {
    case EventKind::kLaunch:
      return "launch";
    case EventKind::kTerminate:
      return "terminate";
    case EventKind::kUtil:
      return "util";
  }
  return "?";
}

double round_to(double x, double scale) { return std::round(x * scale) / scale; }

// The generators' common part: instances arrive in time order from a source; each one's
// util and terminate events wait in a heap (one pending event per live instance), merged
// with the arrivals, so the events come out sorted without sorting them.
struct Instance {
  std::string id;
  double end;     // kForever, or the terminate's time
  double mean;    // mean CPU
  double peak_s;  // time of day of the diurnal peak
};

struct Pending {
  double time;
  uint64_t seq;
  uint32_t instance;
  bool terminate;
  bool operator>(const Pending& o) const { return time != o.time ? time > o.time : seq > o.seq; }
};

struct CpuModel {
  double amplitude;
  double cpu(const Instance& in, double t) const {
    double c = in.mean * (1 + amplitude * std::cos(2 * kPi * (t - in.peak_s) / kDay));
    return round_to(std::clamp(c, 0.0, 1.0), 1e4);
  }
};

class Emitter {
 public:
  Emitter(Workload& w, double duration, double util_interval, CpuModel cpu, uint64_t max_events)
      : w_(w), duration_(duration), interval_(util_interval), cpu_(cpu), max_(max_events) {}

  // Emits the pending events due at or before `t` (all of them for kForever).
  Status drain_until(double t) {
    while (!heap_.empty() && heap_.top().time <= t) {
      const Pending p = heap_.top();
      heap_.pop();
      Instance& in = instances_[p.instance];
      Event e;
      e.time_s = p.time;
      e.kind = p.terminate ? EventKind::kTerminate : EventKind::kUtil;
      e.instance = in.id;
      if (!p.terminate) e.cpu = cpu_.cpu(in, p.time);
      if (Status s = push(std::move(e)); !s.ok()) return s;
      if (!p.terminate) schedule(p.instance, p.time);
    }
    return {};
  }

  Status launch(Event e, Instance in) {
    e.kind = EventKind::kLaunch;
    e.cpu = cpu_.cpu(in, e.time_s);
    e.instance = in.id;
    const double t = e.time_s;
    if (Status s = push(std::move(e)); !s.ok()) return s;
    instances_.push_back(std::move(in));
    schedule(static_cast<uint32_t>(instances_.size() - 1), t);
    return {};
  }

 private:
  void schedule(uint32_t i, double now) {
    const Instance& in = instances_[i];
    if (interval_ > 0) {
      const double next = round_to(now + interval_, 1e3);
      if (next < in.end && next < duration_) {
        heap_.push({next, seq_++, i, false});
        return;
      }
    }
    if (in.end < duration_) heap_.push({in.end, seq_++, i, true});
  }

  Status push(Event e) {
    if (w_.events.size() >= max_)
      return Status::invalid_argument(
          fmt::format("generator: more than max_events = {} events (fewer arrivals, a longer "
                      "util_interval_s, or a larger max_events)",
                      max_));
    w_.events.push_back(std::move(e));
    return {};
  }

  Workload& w_;
  double duration_, interval_;
  CpuModel cpu_;
  uint64_t max_;
  std::vector<Instance> instances_;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<Pending>> heap_;
  uint64_t seq_ = 0;
};

std::string padded_id(const char* prefix, uint64_t n, int width) {
  return fmt::format("{}{:0{}}", prefix, n, width);
}

double exponential(double u, double mean) { return -mean * std::log1p(-u); }

// A uniform double in (0, 1), for the normal quantile.
double open01(uint64_t word) { return (static_cast<double>(word >> 11) + 0.5) * 0x1.0p-53; }

double peak_time(double u, double hour, double spread_h) {
  return (hour + (u - 0.5) * spread_h) * 3600.0;
}

}  // namespace

double uniform01(uint64_t word) { return static_cast<double>(word >> 11) * 0x1.0p-53; }

double normal_quantile(double p) {
  // Peter J. Acklam's algorithm: rational approximations in the central and tail regions.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  constexpr double kLow = 0.02425, kHigh = 1 - kLow;
  if (p <= 0) return -INFINITY;
  if (p >= 1) return INFINITY;
  if (p < kLow) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > kHigh) {
    const double q = std::sqrt(-2 * std::log1p(-p));
    return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

Result<Workload> parse_trace(const std::string& csv, const std::string& name) {
  return TraceParser(name).parse(csv);
}

Result<Workload> load_trace(const std::string& path) {
  Result<std::string> text = read_sim_file(path, kMaxTraceBytes, "trace file");
  if (!text.ok()) return text.status();
  std::string name =
      path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".csv") == 0)
    name.resize(name.size() - 4);
  return parse_trace(*text, name);
}

std::string trace_csv(const Workload& w) {
  fmt::memory_buffer out;
  fmt::format_to(std::back_inserter(out), "# workload {}: {} events, duration_s {}\n{}\n", w.name,
                 w.events.size(), w.duration_s, kTraceHeader);
  const auto opt_uint = [&](uint64_t v) {
    if (v != 0) fmt::format_to(std::back_inserter(out), "{}", v);
    out.push_back(',');
  };
  for (const Event& e : w.events) {
    fmt::format_to(std::back_inserter(out), "{},{},{},{},", e.time_s, event_name(e.kind),
                   e.instance, e.instance_type);
    opt_uint(e.vcpus);
    opt_uint(e.memory_mib);
    opt_uint(e.disk_mib);
    fmt::format_to(std::back_inserter(out), "{},{},{},", e.zone, e.group, e.group_strategy);
    opt_uint(e.partition_count);
    if (e.kind != EventKind::kTerminate) fmt::format_to(std::back_inserter(out), "{}", e.cpu);
    out.push_back('\n');
  }
  return fmt::to_string(out);
}

Status check_generator_options(const GeneratorOptions& o) {
  const auto bad = [](const std::string& why) {
    return Status::invalid_argument("generator: " + why);
  };
  const auto in = [](double v, double lo, double hi) {
    return std::isfinite(v) && v >= lo && v <= hi;
  };
  if (o.name.empty() || o.name.size() > kMaxFieldLength)
    return bad("'name' must be 1 to 128 characters");
  if (!in(o.duration_s, 0, kMaxTraceTime) || o.duration_s <= 0)
    return bad(fmt::format("'duration_s' must be in (0, {}]", kMaxTraceTime));
  if (!in(o.arrivals_per_hour, 0, 1e9)) return bad("'arrivals_per_hour' must be in [0, 1e9]");
  if (!in(o.lifetime_mean_s, 0, kMaxTraceTime) || o.lifetime_mean_s <= 0)
    return bad("'lifetime_mean_s' must be > 0");
  if (!in(o.lifetime_median_s, 0, kMaxTraceTime) || o.lifetime_median_s <= 0)
    return bad("'lifetime_median_s' must be > 0");
  if (!in(o.lifetime_sigma, 0, 10)) return bad("'lifetime_sigma' must be in [0, 10]");
  if (o.types.empty()) return bad("'types' must name at least one instance type");
  for (const auto& [type, weight] : o.types) {
    if (!valid_field_name(type))
      return bad(fmt::format("type '{}' is not a valid name", shown(type)));
    if (!std::isfinite(weight) || weight <= 0 || weight > 1e12)
      return bad(fmt::format("type '{}': the weight must be a number > 0", type));
  }
  for (const std::string& z : o.zones) {
    if (!valid_field_name(z)) return bad(fmt::format("zone '{}' is not a valid name", shown(z)));
  }
  if (!in(o.cpu_low, 0, 1) || !in(o.cpu_high, o.cpu_low, 1))
    return bad("'cpu_low' and 'cpu_high' must satisfy 0 <= cpu_low <= cpu_high <= 1");
  if (!in(o.diurnal_amplitude, 0, 1)) return bad("'diurnal_amplitude' must be in [0, 1]");
  if (!in(o.arrivals_diurnal_amplitude, 0, 1))
    return bad("'arrivals_diurnal_amplitude' must be in [0, 1]");
  if (!in(o.diurnal_peak_hour, 0, 24)) return bad("'diurnal_peak_hour' must be in [0, 24]");
  if (!in(o.diurnal_peak_spread_h, 0, 24)) return bad("'diurnal_peak_spread_h' must be in [0, 24]");
  if (!in(o.util_interval_s, 0, kMaxTraceTime) || (o.util_interval_s > 0 && o.util_interval_s < 1))
    return bad("'util_interval_s' must be 0 (no util events) or at least 1");
  if (!in(o.group_share, 0, 1)) return bad("'group_share' must be in [0, 1]");
  if (o.group_strategy != "cluster" && o.group_strategy != "spread" &&
      o.group_strategy != "partition")
    return bad("'group_strategy' must be cluster, spread or partition");
  if (o.group_size < 1 || o.group_size > 1'000'000) return bad("'group_size' must be >= 1");
  if (o.group_partitions > 7) return bad("'group_partitions' must be 0 to 7");
  if (o.max_events < 1) return bad("'max_events' must be >= 1");
  return {};
}

Result<Workload> generate(const GeneratorOptions& o) {
  if (Status s = check_generator_options(o); !s.ok()) return s;
  Workload w;
  w.name = o.name;
  w.duration_s = o.duration_s;
  // A rough size to reserve: arrivals, their terminates and their util events.
  const double arrivals = o.arrivals_per_hour / 3600 * o.duration_s;
  double life = o.lifetime == LifetimeKind::kExponential ? o.lifetime_mean_s
                : o.lifetime == LifetimeKind::kLognormal
                    ? o.lifetime_median_s * std::exp(o.lifetime_sigma * o.lifetime_sigma / 2)
                    : o.duration_s;
  life = std::min(life, o.duration_s / 2);
  const double per = 2 + (o.util_interval_s > 0 ? life / o.util_interval_s : 0);
  w.events.reserve(
      static_cast<size_t>(std::min(static_cast<double>(o.max_events), arrivals * per * 1.05 + 16)));

  std::mt19937_64 rng(o.seed);
  double total_weight = 0;
  for (const auto& t : o.types) total_weight += t.second;
  const double base_rate_s = o.arrivals_per_hour / 3600;
  const double swing = o.arrivals_diurnal_amplitude;
  const double rate_s = base_rate_s * (1 + swing);  // the peak rate; thinned below
  const unsigned partitions = o.group_partitions ? o.group_partitions : 3;
  Emitter emitter(w, o.duration_s, o.util_interval_s, CpuModel{o.diurnal_amplitude}, o.max_events);
  double t = 0;
  uint64_t n = 0, groups = 0, in_group = 0;
  while (rate_s > 0) {
    t = round_to(t + exponential(uniform01(rng()), 1 / rate_s), 1e3);
    if (!(t < o.duration_s)) break;
    if (swing > 0) {
      // Keep the arrival with probability rate(t) / peak rate (one more draw, only then, so
      // that a workload without the rhythm is what it always was).
      const double rate = 1 + swing * std::cos(2 * M_PI * (t - o.diurnal_peak_hour * 3600) / 86400);
      if (uniform01(rng()) * (1 + swing) >= rate) continue;
    }
    if (Status s = emitter.drain_until(t); !s.ok()) return s;
    // Draws in a fixed order, each from its own word, whatever the options.
    const double u_type = uniform01(rng()), u_zone = uniform01(rng()), u_life = open01(rng()),
                 u_cpu = uniform01(rng()), u_peak = uniform01(rng()), u_group = uniform01(rng());
    Event e;
    e.time_s = t;
    double acc = 0, pick = u_type * total_weight;
    size_t ti = 0;
    for (; ti + 1 < o.types.size(); ++ti) {
      acc += o.types[ti].second;
      if (pick < acc) break;
    }
    e.instance_type = o.types[ti].first;
    if (!o.zones.empty())
      e.zone = o.zones[std::min(o.zones.size() - 1, static_cast<size_t>(u_zone * o.zones.size()))];
    if (u_group < o.group_share) {
      if (groups == 0 || in_group == o.group_size) {
        ++groups;
        in_group = 0;
      }
      ++in_group;
      e.group = fmt::format("g{}", groups);
      e.group_strategy = o.group_strategy;
      if (o.group_strategy == "partition") e.partition_count = partitions;
    }
    Instance in;
    in.id = padded_id("i-", ++n, 8);
    switch (o.lifetime) {
      case LifetimeKind::kExponential:
        in.end = round_to(t + exponential(u_life, o.lifetime_mean_s), 1e3);
        break;
      case LifetimeKind::kLognormal:
        in.end = round_to(
            t + o.lifetime_median_s * std::exp(o.lifetime_sigma * normal_quantile(u_life)), 1e3);
        break;
      case LifetimeKind::kForever:
        in.end = kForever;
        break;
    }
    if (!std::isfinite(in.end) && o.lifetime != LifetimeKind::kForever) in.end = kForever;
    in.mean = o.cpu_low + u_cpu * (o.cpu_high - o.cpu_low);
    in.peak_s = peak_time(u_peak, o.diurnal_peak_hour, o.diurnal_peak_spread_h);
    if (Status s = emitter.launch(std::move(e), std::move(in)); !s.ok()) return s;
  }
  if (Status s = emitter.drain_until(kForever); !s.ok()) return s;
  return w;
}

Workload consolidation_workload(unsigned apps, const std::string& type, double duration_s,
                                double cpu_low, double cpu_high, double diurnal_amplitude,
                                double util_interval_s, uint64_t seed) {
  Workload w;
  w.name = fmt::format("consolidation-{}", apps);
  w.duration_s = duration_s;
  if (util_interval_s > 0)
    w.events.reserve(
        static_cast<size_t>(std::min(5e7, apps * (1 + std::ceil(duration_s / util_interval_s)))));
  std::mt19937_64 rng(seed);
  Emitter emitter(w, duration_s, util_interval_s, CpuModel{diurnal_amplitude},
                  std::numeric_limits<uint64_t>::max());
  const int width = std::max(4, static_cast<int>(fmt::formatted_size("{}", apps)));
  for (unsigned i = 1; i <= apps; ++i) {
    const double u_cpu = uniform01(rng()), u_peak = uniform01(rng());
    Event e;
    e.time_s = 0;
    e.instance_type = type;
    Instance in;
    in.id = padded_id("app-", i, width);
    in.end = kForever;
    in.mean = cpu_low + u_cpu * (cpu_high - cpu_low);
    in.peak_s = peak_time(u_peak, 14.0, 4.0);
    (void)emitter.launch(std::move(e), std::move(in));
  }
  (void)emitter.drain_until(kForever);
  return w;
}

}  // namespace nimbus::cloud::sim
