#include "cloud/sim_datacenter.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_set>

namespace nimbus::cloud::sim {
namespace {

using nlohmann::json;

constexpr size_t kMaxDataCenterBytes = 64u << 20;

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > kMaxSimNameLength) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

Status bad(const std::string& where, const std::string& why) {
  return Status::invalid_argument(fmt::format("data center: {}: {}", where, why));
}

Status check_keys(const json& obj, std::initializer_list<const char*> allowed,
                  const std::string& where) {
  for (const auto& item : obj.items()) {
    bool known = false;
    for (const char* k : allowed) known = known || item.key() == k;
    if (!known) {
      std::string list;
      for (const char* k : allowed) list += (list.empty() ? "" : ", ") + std::string(k);
      return bad(where,
                 fmt::format("unknown key '{}' (known: {})", item.key().substr(0, 80), list));
    }
  }
  return {};
}

Result<std::string> name_field(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return bad(where, fmt::format("'{}' is missing", key));
  if (!it->is_string()) return bad(where, fmt::format("'{}' must be a string", key));
  std::string s = it->get<std::string>();
  if (!valid_name(s))
    return bad(where, fmt::format("'{}' must be 1 to {} characters of [A-Za-z0-9._-]", key,
                                  kMaxSimNameLength));
  return s;
}

// An optional whole number in [lo, hi]; `value` keeps its default when absent.
Status uint_field(const json& obj, const char* key, uint64_t lo, uint64_t hi,
                  const std::string& where, uint64_t& value, bool required = false) {
  auto it = obj.find(key);
  if (it == obj.end()) return required ? bad(where, fmt::format("'{}' is missing", key)) : Status();
  if (!it->is_number_unsigned() || it->get<uint64_t>() < lo || it->get<uint64_t>() > hi)
    return bad(where, fmt::format("'{}' must be a whole number from {} to {}", key, lo, hi));
  value = it->get<uint64_t>();
  return {};
}

// An optional finite number in [lo, hi] (or (lo, hi] with lo_open).
Status double_field(const json& obj, const char* key, double lo, double hi, bool lo_open,
                    const std::string& where, double& value) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  const bool ok = it->is_number() && std::isfinite(it->get<double>()) &&
                  (lo_open ? it->get<double>() > lo : it->get<double>() >= lo) &&
                  it->get<double>() <= hi;
  if (!ok)
    return bad(where,
               fmt::format("'{}' must be a number in {}{}, {}]", key, lo_open ? "(" : "[", lo, hi));
  value = it->get<double>();
  return {};
}

Result<HostShape> parse_shape(const json& j, const std::string& zone, size_t index) {
  std::string where = fmt::format("zone '{}' host shape #{}", zone, index + 1);
  if (!j.is_object()) return bad(where, "must be an object");
  Result<std::string> name = name_field(j, "shape", where);
  if (!name.ok()) return name.status();
  where = fmt::format("zone '{}' shape '{}'", zone, *name);
  if (Status s =
          check_keys(j,
                     {"shape", "count", "cpus", "memory_mib", "disk_mib", "cpu_overcommit",
                      "memory_overcommit", "vm_overhead_mib", "peak_watts", "idle_fraction", "ids"},
                     where);
      !s.ok())
    return s;
  HostShape h;
  h.name = *name;
  uint64_t count = 1, cpus = 1, memory = h.memory_mib, disk = 0, overhead = 0;
  if (Status s = uint_field(j, "count", 1, kMaxSimHosts, where, count, true); !s.ok()) return s;
  if (Status s = uint_field(j, "cpus", 1, kMaxSimHostCpus, where, cpus, true); !s.ok()) return s;
  if (Status s = uint_field(j, "memory_mib", 1, kMaxSimHostMemoryMib, where, memory, true); !s.ok())
    return s;
  if (Status s = uint_field(j, "disk_mib", 0, kMaxSimHostMemoryMib, where, disk); !s.ok()) return s;
  if (Status s = uint_field(j, "vm_overhead_mib", 0, kMaxSimHostMemoryMib, where, overhead);
      !s.ok())
    return s;
  if (Status s =
          double_field(j, "cpu_overcommit", 0, kMaxSimOvercommit, true, where, h.cpu_overcommit);
      !s.ok())
    return s;
  if (Status s = double_field(j, "memory_overcommit", 0, kMaxSimOvercommit, true, where,
                              h.memory_overcommit);
      !s.ok())
    return s;
  if (Status s = double_field(j, "peak_watts", 0, 1e9, false, where, h.peak_watts); !s.ok())
    return s;
  if (Status s = double_field(j, "idle_fraction", 0, 1, false, where, h.idle_fraction); !s.ok())
    return s;
  h.count = static_cast<unsigned>(count);
  h.cpus = static_cast<unsigned>(cpus);
  h.memory_mib = memory;
  h.disk_mib = disk;
  h.vm_overhead_mib = overhead;
  if (auto it = j.find("ids"); it != j.end()) {
    if (!it->is_array() || it->size() != count)
      return bad(where, fmt::format("'ids' must be a list of {} ids (its count)", count));
    h.ids.reserve(count);
    for (size_t i = 0; i < it->size(); ++i) {
      const json& id = (*it)[i];
      if (!id.is_string() || !valid_name(id.get<std::string>()))
        return bad(where, fmt::format("'ids' #{} must be 1 to {} characters of [A-Za-z0-9._-]",
                                      i + 1, kMaxSimNameLength));
      h.ids.push_back(id.get<std::string>());
    }
  }
  return h;
}

}  // namespace

std::string generated_host_id(const std::string& zone, const std::string& shape, uint64_t n,
                              uint64_t count) {
  const int width = static_cast<int>(fmt::formatted_size("{}", count));
  return fmt::format("{}-{}-{:0{}}", zone, shape, n, width);
}

Result<DataCenter> parse_datacenter(const std::string& json_text) {
  const json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return bad("file", "not valid JSON");
  if (!doc.is_object()) return bad("file", "must be a JSON object {\"name\", \"zones\"}");
  if (Status s = check_keys(doc, {"name", "zones"}, "top level"); !s.ok()) return s;
  DataCenter dc;
  dc.name = "datacenter";
  if (doc.contains("name")) {
    Result<std::string> name = name_field(doc, "name", "top level");
    if (!name.ok()) return name.status();
    dc.name = *name;
  }
  auto zones = doc.find("zones");
  if (zones == doc.end() || !zones->is_array() || zones->empty())
    return bad("top level", "'zones' must be a non-empty list");
  std::unordered_set<std::string> zone_names, ids;
  uint64_t total = 0;
  for (size_t zi = 0; zi < zones->size(); ++zi) {
    const json& z = (*zones)[zi];
    std::string where = fmt::format("zone #{}", zi + 1);
    if (!z.is_object()) return bad(where, "must be an object {\"name\", \"hosts\"}");
    Result<std::string> zname = name_field(z, "name", where);
    if (!zname.ok()) return zname.status();
    where = fmt::format("zone '{}'", *zname);
    if (Status s = check_keys(z, {"name", "hosts"}, where); !s.ok()) return s;
    if (!zone_names.insert(*zname).second) return bad(where, "the zone is named twice");
    auto hosts = z.find("hosts");
    if (hosts == z.end() || !hosts->is_array() || hosts->empty())
      return bad(where, "'hosts' must be a non-empty list of host shapes");
    Zone zone;
    zone.name = *zname;
    for (size_t hi = 0; hi < hosts->size(); ++hi) {
      Result<HostShape> h = parse_shape((*hosts)[hi], zone.name, hi);
      if (!h.ok()) return h.status();
      total += h->count;
      if (total > kMaxSimHosts)
        return bad(fmt::format("zone '{}' shape '{}'", zone.name, h->name),
                   fmt::format("more than {} hosts in the data center", kMaxSimHosts));
      if (h->ids.empty()) {
        h->ids.reserve(h->count);
        for (uint64_t n = 1; n <= h->count; ++n)
          h->ids.push_back(generated_host_id(zone.name, h->name, n, h->count));
      }
      for (const std::string& id : h->ids) {
        if (!ids.insert(id).second)
          return bad(fmt::format("zone '{}' shape '{}'", zone.name, h->name),
                     fmt::format("host id '{}' is used twice in the data center", id));
      }
      zone.hosts.push_back(std::move(*h));
    }
    dc.zones.push_back(std::move(zone));
  }
  return dc;
}

Result<std::string> read_sim_file(const std::string& path, size_t max_bytes,
                                  const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found(fmt::format("cannot read the {} '{}'", what, path));
  std::string text;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size < 0 || !in)
    return Status::invalid_argument(fmt::format("the {} '{}' is not a regular file", what, path));
  if (static_cast<uint64_t>(size) > max_bytes)
    return Status::invalid_argument(
        fmt::format("the {} '{}' is larger than {} bytes", what, path, max_bytes));
  text.resize(static_cast<size_t>(size));
  in.read(text.data(), size);
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

Result<DataCenter> load_datacenter(const std::string& path) {
  Result<std::string> text = read_sim_file(path, kMaxDataCenterBytes, "data center file");
  if (!text.ok()) return text.status();
  Result<DataCenter> dc = parse_datacenter(*text);
  if (!dc.ok()) return dc.status().with_context(path);
  return dc;
}

uint64_t host_count(const DataCenter& dc) {
  uint64_t n = 0;
  for (const Zone& z : dc.zones) {
    for (const HostShape& h : z.hosts) n += h.count;
  }
  return n;
}

}  // namespace nimbus::cloud::sim
