#include "cloud/sim_scenario.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cloud/sim_datacenter.h"
#include "cloud/sim_workload.h"

namespace nimbus::cloud::sim {
namespace {

using nlohmann::json;

constexpr size_t kMaxScenarioBytes = 16u << 20;
constexpr double kDefaultConsolidationDuration = 86400;  // one day

Status bad(const std::string& why) { return Status::invalid_argument("scenario: " + why); }

Status check_keys(const json& obj, std::initializer_list<const char*> allowed,
                  const std::string& where) {
  for (const auto& item : obj.items()) {
    if (std::none_of(allowed.begin(), allowed.end(),
                     [&](const char* k) { return item.key() == k; })) {
      std::string list;
      for (const char* k : allowed) list += (list.empty() ? "" : ", ") + std::string(k);
      return bad(
          fmt::format("{}: unknown key '{}' (known: {})", where, item.key().substr(0, 80), list));
    }
  }
  return {};
}

Status get_number(const json& obj, const char* key, const std::string& where, double& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_number() || !std::isfinite(it->get<double>()))
    return bad(fmt::format("{}: '{}' must be a finite number", where, key));
  out = it->get<double>();
  return {};
}

Status get_uint(const json& obj, const char* key, const std::string& where, uint64_t max,
                uint64_t& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_number_unsigned() || it->get<uint64_t>() > max)
    return bad(fmt::format("{}: '{}' must be a whole number from 0 to {}", where, key, max));
  out = it->get<uint64_t>();
  return {};
}

Status get_string(const json& obj, const char* key, const std::string& where, std::string& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_string()) return bad(fmt::format("{}: '{}' must be a string", where, key));
  out = it->get<std::string>();
  return {};
}

std::string resolve(const std::string& base_dir, const std::string& file) {
  if (file.empty() || file.front() == '/' || base_dir.empty()) return file;
  return base_dir + "/" + file;
}

Result<GeneratorOptions> parse_generator(const json& g, const DataCenter& dc, double duration_s,
                                         const std::string& name) {
  const std::string where = "workload.generator";
  if (!g.is_object()) return bad(where + " must be an object");
  if (Status s = check_keys(g,
                            {"seed",
                             "duration_s",
                             "arrivals_per_hour",
                             "arrivals_diurnal_amplitude",
                             "lifetime",
                             "lifetime_mean_s",
                             "lifetime_median_s",
                             "lifetime_sigma",
                             "types",
                             "zones",
                             "cpu_low",
                             "cpu_high",
                             "diurnal_amplitude",
                             "diurnal_peak_hour",
                             "diurnal_peak_spread_h",
                             "util_interval_s",
                             "group_share",
                             "group_strategy",
                             "group_size",
                             "group_partitions",
                             "max_events"},
                            where);
      !s.ok())
    return s;
  GeneratorOptions o;
  o.name = name;
  if (duration_s > 0) o.duration_s = duration_s;
  uint64_t v = 0;
  if (Status s = get_uint(g, "seed", where, UINT64_MAX, o.seed); !s.ok()) return s;
  double d = -1;
  if (Status s = get_number(g, "duration_s", where, d); !s.ok()) return s;
  if (d >= 0 && duration_s > 0 && d != duration_s)
    return bad(
        fmt::format("{}: 'duration_s' {} differs from the scenario's {}", where, d, duration_s));
  if (d >= 0) o.duration_s = d;
  if (duration_s <= 0 && d < 0)
    return bad(where + ": 'duration_s' is needed (here or in the scenario)");
  for (auto [key, field] : {std::pair{"arrivals_per_hour", &o.arrivals_per_hour},
                            {"arrivals_diurnal_amplitude", &o.arrivals_diurnal_amplitude},
                            {"lifetime_mean_s", &o.lifetime_mean_s},
                            {"lifetime_median_s", &o.lifetime_median_s},
                            {"lifetime_sigma", &o.lifetime_sigma},
                            {"cpu_low", &o.cpu_low},
                            {"cpu_high", &o.cpu_high},
                            {"diurnal_amplitude", &o.diurnal_amplitude},
                            {"diurnal_peak_hour", &o.diurnal_peak_hour},
                            {"diurnal_peak_spread_h", &o.diurnal_peak_spread_h},
                            {"util_interval_s", &o.util_interval_s},
                            {"group_share", &o.group_share}}) {
    if (Status s = get_number(g, key, where, *field); !s.ok()) return s;
  }
  std::string lifetime = "exponential";
  if (Status s = get_string(g, "lifetime", where, lifetime); !s.ok()) return s;
  if (lifetime == "exponential") {
    o.lifetime = LifetimeKind::kExponential;
  } else if (lifetime == "lognormal") {
    o.lifetime = LifetimeKind::kLognormal;
  } else if (lifetime == "forever") {
    o.lifetime = LifetimeKind::kForever;
  } else {
    return bad(where + ": 'lifetime' must be exponential, lognormal or forever");
  }
  if (auto it = g.find("types"); it != g.end()) {
    if (!it->is_object() || it->empty())
      return bad(where + ": 'types' must be an object {\"type\": weight, ...}");
    o.types.clear();
    for (const auto& item : it->items()) {
      if (!item.value().is_number())
        return bad(fmt::format("{}: the weight of type '{}' must be a number", where,
                               item.key().substr(0, 80)));
      o.types.emplace_back(item.key(), item.value().get<double>());
    }
  }
  if (auto it = g.find("zones"); it != g.end()) {
    if (it->is_string() && it->get<std::string>() == "all") {
      for (const Zone& z : dc.zones) o.zones.push_back(z.name);
    } else if (it->is_array()) {
      for (const json& z : *it) {
        if (!z.is_string()) return bad(where + ": 'zones' lists zone names");
        const std::string zn = z.get<std::string>();
        if (std::none_of(dc.zones.begin(), dc.zones.end(),
                         [&](const Zone& dz) { return dz.name == zn; }))
          return bad(
              fmt::format("{}: zone '{}' is not in the data center", where, zn.substr(0, 80)));
        o.zones.push_back(zn);
      }
    } else {
      return bad(where + ": 'zones' must be \"all\" or a list of the data center's zones");
    }
  }
  if (Status s = get_string(g, "group_strategy", where, o.group_strategy); !s.ok()) return s;
  v = o.group_size;
  if (Status s = get_uint(g, "group_size", where, 1'000'000, v); !s.ok()) return s;
  o.group_size = static_cast<unsigned>(v);
  v = o.group_partitions;
  if (Status s = get_uint(g, "group_partitions", where, 7, v); !s.ok()) return s;
  o.group_partitions = static_cast<unsigned>(v);
  if (Status s = get_uint(g, "max_events", where, 100'000'000, o.max_events); !s.ok()) return s;
  if (Status s = check_generator_options(o); !s.ok()) return s;
  return o;
}

Result<Workload> parse_consolidation(const json& c, double duration_s) {
  const std::string where = "workload.consolidation";
  if (!c.is_object()) return bad(where + " must be an object");
  if (Status s = check_keys(c,
                            {"apps", "type", "duration_s", "cpu_low", "cpu_high",
                             "diurnal_amplitude", "util_interval_s", "seed"},
                            where);
      !s.ok())
    return s;
  uint64_t apps = 0, seed = 1;
  if (Status s = get_uint(c, "apps", where, 10'000'000, apps); !s.ok()) return s;
  if (apps < 1) return bad(where + ": 'apps' must be given, at least 1");
  if (Status s = get_uint(c, "seed", where, UINT64_MAX, seed); !s.ok()) return s;
  GeneratorOptions o;  // for its checks of the shared fields
  o.util_interval_s = 3600;
  o.diurnal_amplitude = 0.5;
  o.cpu_low = 0.1;
  o.cpu_high = 0.5;
  double d = -1;
  if (Status s = get_number(c, "duration_s", where, d); !s.ok()) return s;
  if (d >= 0 && duration_s > 0 && d != duration_s)
    return bad(
        fmt::format("{}: 'duration_s' {} differs from the scenario's {}", where, d, duration_s));
  o.duration_s = d >= 0 ? d : duration_s > 0 ? duration_s : kDefaultConsolidationDuration;
  std::string type = "t3.medium";
  if (Status s = get_string(c, "type", where, type); !s.ok()) return s;
  o.types = {{type, 1.0}};
  for (auto [key, field] : {std::pair{"cpu_low", &o.cpu_low},
                            {"cpu_high", &o.cpu_high},
                            {"diurnal_amplitude", &o.diurnal_amplitude},
                            {"util_interval_s", &o.util_interval_s}}) {
    if (Status s = get_number(c, key, where, *field); !s.ok()) return s;
  }
  if (Status s = check_generator_options(o); !s.ok()) return s.with_context(where);
  if (o.util_interval_s > 0 && apps * (o.duration_s / o.util_interval_s) > 1e8)
    return bad(where + ": more than 100,000,000 util events (a longer util_interval_s)");
  return consolidation_workload(static_cast<unsigned>(apps), type, o.duration_s, o.cpu_low,
                                o.cpu_high, o.diurnal_amplitude, o.util_interval_s, seed);
}

}  // namespace

Result<Scenario> parse_scenario(const std::string& json_text, const std::string& base_dir) {
  const json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return bad("not valid JSON");
  if (!doc.is_object()) return bad("must be a JSON object");
  if (Status s = check_keys(
          doc, {"name", "datacenter", "datacenter_file", "workload", "duration_s", "simulation"},
          "top level");
      !s.ok())
    return s;
  Scenario sc;
  sc.name = "scenario";
  if (Status s = get_string(doc, "name", "top level", sc.name); !s.ok()) return s;
  if (sc.name.empty() || sc.name.size() > 128) return bad("'name' must be 1 to 128 characters");

  const bool inline_dc = doc.contains("datacenter"), file_dc = doc.contains("datacenter_file");
  if (inline_dc == file_dc) return bad("give exactly one of 'datacenter' and 'datacenter_file'");
  if (inline_dc) {
    Result<DataCenter> dc = parse_datacenter(doc["datacenter"].dump());
    if (!dc.ok()) return dc.status().with_context("scenario");
    sc.dc = std::move(*dc);
  } else {
    std::string file;
    if (Status s = get_string(doc, "datacenter_file", "top level", file); !s.ok()) return s;
    Result<DataCenter> dc = load_datacenter(resolve(base_dir, file));
    if (!dc.ok()) return dc.status().with_context("scenario");
    sc.dc = std::move(*dc);
  }

  double duration_s = -1;
  if (Status s = get_number(doc, "duration_s", "top level", duration_s); !s.ok()) return s;
  if (doc.contains("duration_s") && !(duration_s > 0 && duration_s <= kMaxTraceTime))
    return bad(fmt::format("'duration_s' must be in (0, {}]", kMaxTraceTime));

  auto wit = doc.find("workload");
  if (wit == doc.end() || !wit->is_object() || wit->size() != 1)
    return bad("'workload' must be an object with one of 'generator', 'trace', 'consolidation'");
  if (Status s = check_keys(*wit, {"generator", "trace", "consolidation"}, "workload"); !s.ok())
    return s;
  if (auto g = wit->find("generator"); g != wit->end()) {
    Result<GeneratorOptions> o = parse_generator(*g, sc.dc, duration_s, sc.name);
    if (!o.ok()) return o.status();
    Result<Workload> w = generate(*o);
    if (!w.ok()) return w.status().with_context("scenario");
    sc.workload = std::move(*w);
  } else if (auto t = wit->find("trace"); t != wit->end()) {
    if (!t->is_string() || t->get<std::string>().empty())
      return bad("workload.trace must be a file name");
    Result<Workload> w = load_trace(resolve(base_dir, t->get<std::string>()));
    if (!w.ok()) return w.status().with_context("scenario");
    sc.workload = std::move(*w);
    if (duration_s > 0) {
      if (duration_s < sc.workload.duration_s)
        return bad(fmt::format("'duration_s' {} ends before the trace's last event at {}",
                               duration_s, sc.workload.duration_s));
      sc.workload.duration_s = duration_s;
    }
  } else {
    Result<Workload> w = parse_consolidation(wit->at("consolidation"), duration_s);
    if (!w.ok()) return w.status();
    sc.workload = std::move(*w);
  }

  if (auto sim = doc.find("simulation"); sim != doc.end()) {
    const std::string where = "simulation";
    if (!sim->is_object()) return bad("'simulation' must be an object");
    if (Status s = check_keys(
            *sim,
            {"policies", "sample_interval_s", "consolidate_interval_s", "consolidate_threshold"},
            where);
        !s.ok())
      return s;
    if (auto p = sim->find("policies"); p != sim->end()) {
      if (!p->is_array() || p->empty())
        return bad("simulation: 'policies' must be a non-empty list");
      for (const json& name : *p) {
        const auto& known = scenario_policy_names();
        if (!name.is_string() ||
            std::find(known.begin(), known.end(), name.get<std::string>()) == known.end())
          return bad(
              fmt::format("simulation: policy {} is not one of spread, pack, "
                          "pack+migrate, dedicated",
                          name.dump().substr(0, 80)));
        if (std::find(sc.policies.begin(), sc.policies.end(), name.get<std::string>()) !=
            sc.policies.end())
          return bad(fmt::format("simulation: policy {} is listed twice", name.dump()));
        sc.policies.push_back(name.get<std::string>());
      }
    }
    if (Status s = get_number(*sim, "sample_interval_s", where, sc.sample_interval_s); !s.ok())
      return s;
    if (sim->contains("sample_interval_s") && !(sc.sample_interval_s > 0))
      return bad("simulation: 'sample_interval_s' must be > 0");
    if (Status s = get_number(*sim, "consolidate_interval_s", where, sc.consolidate_interval_s);
        !s.ok())
      return s;
    if (sim->contains("consolidate_interval_s") && !(sc.consolidate_interval_s > 0))
      return bad("simulation: 'consolidate_interval_s' must be > 0");
    if (Status s = get_number(*sim, "consolidate_threshold", where, sc.consolidate_threshold);
        !s.ok())
      return s;
    if (sim->contains("consolidate_threshold") &&
        !(sc.consolidate_threshold >= 0 && sc.consolidate_threshold <= 1))
      return bad("simulation: 'consolidate_threshold' must be in [0, 1]");
  }
  return sc;
}

Result<Scenario> load_scenario(const std::string& path) {
  Result<std::string> text = read_sim_file(path, kMaxScenarioBytes, "scenario file");
  if (!text.ok()) return text.status();
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  Result<Scenario> sc = parse_scenario(*text, dir.empty() ? "/" : dir);
  if (!sc.ok()) return sc.status().with_context(path);
  return sc;
}

}  // namespace nimbus::cloud::sim
