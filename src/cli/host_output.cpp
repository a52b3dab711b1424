#include "cli/host_output.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace nimbus::cli {

using json = nlohmann::json;

namespace {

constexpr const char* kNone = "--";

size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count UTF-8 lead bytes
  return n;
}

// A number without a useless ".0".
std::string trim_number(double v, int decimals) {
  if (std::fabs(v - std::round(v)) < 0.05)
    return fmt::format("{}", static_cast<long long>(std::llround(v)));
  return fmt::format("{:.{}f}", v, decimals);
}

std::string num_text(const json& j, const char* key) {
  double v;
  return json_num(j, key, v) ? trim_number(v, 1) : kNone;
}

std::string mib_text(const json& j, const char* key) {
  double v;
  return json_num(j, key, v) ? format_mib(v) : kNone;
}

const json& member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string or_none(const std::string& s) { return s.empty() ? kNone : s; }

// Key: value lines with the values aligned.
class KeyValues {
 public:
  void add(const std::string& key, const std::string& value) { lines_.emplace_back(key, value); }
  std::string render() const {
    size_t width = 0;
    for (const auto& [k, v] : lines_) width = std::max(width, display_width(k) + 1);
    std::string out;
    for (const auto& [k, v] : lines_) {
      out += k + ":" + std::string(width + 2 - display_width(k) - 1, ' ') + v + "\n";
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> lines_;
};

}  // namespace

std::string json_str(const json& j, const char* key, const std::string& fallback) {
  const json& v = member(j, key);
  return v.is_string() ? v.get<std::string>() : fallback;
}

bool json_num(const json& j, const char* key, double& out) {
  const json& v = member(j, key);
  if (!v.is_number()) return false;
  out = v.get<double>();
  return true;
}

std::string Table::render() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); i++) widths[i] = std::max(widths[i], display_width(row[i]));
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); i++) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - display_width(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string format_mib(double mib) {
  if (mib < 0) mib = 0;
  if (mib < 1024) return trim_number(mib, 1) + "MiB";
  if (mib < 1024.0 * 1024) return trim_number(mib / 1024, 1) + "GiB";
  return trim_number(mib / (1024.0 * 1024), 1) + "TiB";
}

std::string format_bytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 0) bytes = 0;
  int unit = 0;
  while (bytes >= 1024 && unit < 5) {
    bytes /= 1024;
    ++unit;
  }
  return (unit == 0 ? fmt::format("{}", static_cast<long long>(bytes)) : trim_number(bytes, 1)) +
         kUnits[unit];
}

std::string format_forward(const json& f) {
  std::string out;
  const std::string addr = json_str(f, "host_address", "0.0.0.0");
  if (!addr.empty() && addr != "0.0.0.0") out += addr + ":";
  out += num_text(f, "host_port") + "->" + num_text(f, "guest_port");
  const std::string proto = json_str(f, "protocol", "tcp");
  if (proto != "tcp") out += "/" + proto;
  return out;
}

std::string format_forwards(const json& vm) {
  const json& forwards = member(vm, "forwards");
  if (!forwards.is_array() || forwards.empty()) return kNone;
  std::string out;
  for (const json& f : forwards) out += (out.empty() ? "" : ",") + format_forward(f);
  return out;
}

std::string format_ipv4(const json& vm) {
  const json& a = member(vm, "addresses");
  std::string ip = json_str(a, "private");
  if (ip.empty()) ip = json_str(a, "host");
  if (ip.empty()) ip = json_str(a, "user");
  return or_none(ip);
}

std::string format_vm_list(const json& vms) {
  Table t({"Name", "State", "CPUs", "Memory", "Disk", "IPv4", "Forwards"});
  if (vms.is_array()) {
    for (const json& vm : vms) {
      std::string state = or_none(json_str(vm, "state"));
      const bool live = state == "running" || state == "starting" || state == "paused";
      t.add_row({json_str(vm, "name", "?"), state, num_text(vm, "cpus"), mib_text(vm, "memory_mib"),
                 mib_text(vm, "disk_mib"), live ? format_ipv4(vm) : kNone, format_forwards(vm)});
    }
  }
  return t.render();
}

std::string format_vm_info(const json& vm) {
  KeyValues kv;
  kv.add("Name", json_str(vm, "name", "?"));
  std::string state = or_none(json_str(vm, "state"));
  const std::string desired = json_str(vm, "desired_state");
  if (state == "running" && member(vm, "ready").is_boolean() && !member(vm, "ready").get<bool>()) {
    state += " (guest not ready)";
  } else if (!desired.empty() && desired != state && state != "starting" && state != "stopping") {
    state += fmt::format(" (desired: {})", desired);
  }
  kv.add("State", state);
  kv.add("Image", or_none(json_str(vm, "image")));
  kv.add("CPUs", num_text(vm, "cpus"));
  const json& usage = member(vm, "usage");
  const std::string st = json_str(vm, "state");
  const bool live = st == "running" || st == "paused" || st == "starting" || st == "stopping";
  double used;
  std::string memory = mib_text(vm, "memory_mib");
  if (live && json_num(usage, "memory_mib", used)) memory = format_mib(used) + " used of " + memory;
  kv.add("Memory", memory);
  std::string disk = mib_text(vm, "disk_mib");
  if (json_num(usage, "disk_used_mib", used)) disk = format_mib(used) + " used of " + disk;
  kv.add("Disk", disk);
  const json& addresses = member(vm, "addresses");
  std::string ips;
  for (const char* net : {"private", "host", "user"}) {
    const std::string ip = json_str(addresses, net);
    if (!ip.empty()) ips += fmt::format("{}{} ({} network)", ips.empty() ? "" : ", ", ip, net);
  }
  kv.add("IPv4", live ? or_none(ips) : kNone);
  std::string forwards;
  if (member(vm, "forwards").is_array()) {
    for (const json& f : member(vm, "forwards")) {
      forwards +=
          fmt::format("{}{} {}:{} -> {}", forwards.empty() ? "" : ", ",
                      json_str(f, "protocol", "tcp"), json_str(f, "host_address", "0.0.0.0"),
                      num_text(f, "host_port"), num_text(f, "guest_port"));
    }
  }
  kv.add("Forwards", or_none(forwards));
  std::string restart = or_none(json_str(vm, "restart_policy"));
  double restarts;
  if (json_num(vm, "restarts", restarts) && restarts > 0)
    restart += fmt::format(" ({} restarts)", trim_number(restarts, 0));
  kv.add("Restart policy", restart);
  kv.add("Created", or_none(json_str(vm, "created_at")));
  if (live && !json_str(vm, "started_at").empty()) kv.add("Started", json_str(vm, "started_at"));
  double v;
  if (live && json_num(usage, "cpu_seconds", v)) kv.add("CPU time", fmt::format("{:.1f}s", v));
  double rd = 0, wr = 0, rx = 0, tx = 0;
  const bool have_rd = json_num(usage, "disk_read_bytes", rd),
             have_wr = json_num(usage, "disk_write_bytes", wr);
  if (live && (have_rd || have_wr)) {
    kv.add("Disk I/O", fmt::format("{} read, {} written", format_bytes(rd), format_bytes(wr)));
  }
  const bool have_rx = json_num(usage, "net_rx_bytes", rx),
             have_tx = json_num(usage, "net_tx_bytes", tx);
  if (live && (have_rx || have_tx)) {
    kv.add("Network", fmt::format("{} received, {} sent", format_bytes(rx), format_bytes(tx)));
  }
  double pid, uid;
  if (live && json_num(vm, "pid", pid) && pid > 0) {
    kv.add("Process", json_num(vm, "uid", uid)
                          ? fmt::format("pid {}, uid {}", trim_number(pid, 0), trim_number(uid, 0))
                          : fmt::format("pid {}", trim_number(pid, 0)));
  }
  if (live && !json_str(vm, "cgroup").empty()) kv.add("Cgroup", json_str(vm, "cgroup"));
  if (live && !json_str(vm, "console_socket").empty())
    kv.add("Console", json_str(vm, "console_socket"));
  if (!json_str(vm, "console_log").empty()) kv.add("Console log", json_str(vm, "console_log"));
  if (!json_str(vm, "last_exit").empty()) kv.add("Last exit", json_str(vm, "last_exit"));
  return kv.render();
}

std::string format_host(const json& host) {
  KeyValues kv;
  std::string name = or_none(json_str(host, "hostname"));
  if (!json_str(host, "version").empty()) name += " (nimbusd " + json_str(host, "version") + ")";
  kv.add("Host", name);
  if (!json_str(host, "state_dir").empty()) kv.add("State dir", json_str(host, "state_dir"));
  std::string isolation;
  if (!json_str(host, "cgroup").empty()) isolation = "cgroup " + json_str(host, "cgroup");
  const json& sandbox = member(host, "sandbox");
  if (sandbox.is_boolean())
    isolation += std::string(isolation.empty() ? "" : ", ") +
                 (sandbox.get<bool>() ? "sandbox on" : "sandbox off");
  if (!isolation.empty()) kv.add("Isolation", isolation);
  if (!json_str(host, "sandbox_note").empty())
    kv.add("Sandbox note", json_str(host, "sandbox_note"));
  double overhead;
  if (json_num(host, "vm_overhead_mib", overhead))
    kv.add("VM overhead", format_mib(overhead) + " of memory per VM");
  const json& vms = member(host, "vms");
  if (vms.is_object())
    kv.add("VMs", fmt::format("{} ({} running)", num_text(vms, "total"), num_text(vms, "running")));

  Table t({"Resource", "Host", "Reserved", "Capacity", "Allocated", "Available"});
  const json& cpus = member(host, "cpus");
  std::string capacity = num_text(cpus, "capacity");
  double over;
  if (json_num(cpus, "overcommit", over) && over != 1.0)
    capacity += fmt::format(" ({}x over)", trim_number(over, 1));
  t.add_row({"CPUs", num_text(cpus, "host"), kNone, capacity, num_text(cpus, "allocated"),
             num_text(cpus, "available")});
  for (const auto& [label, key] :
       {std::pair{"Memory", "memory_mib"}, std::pair{"Disk", "disk_mib"}}) {
    const json& r = member(host, key);
    t.add_row({label, mib_text(r, "host"), mib_text(r, "reserved"), mib_text(r, "capacity"),
               mib_text(r, "allocated"), mib_text(r, "available")});
  }
  return kv.render() + "\n" + t.render();
}

std::string format_images(const json& images) {
  Table t({"Name", "Disk", "Format", "Created", "Description"});
  if (images.is_array()) {
    for (const json& image : images) {
      t.add_row({json_str(image, "name", "?"), mib_text(image, "disk_mib"),
                 or_none(json_str(image, "disk_format")), or_none(json_str(image, "created_at")),
                 json_str(image, "description")});
    }
  }
  return t.render();
}

std::string format_snapshots(const json& snapshots) {
  Table t({"Name", "Created", "Size"});
  if (snapshots.is_array()) {
    for (const json& s : snapshots) {
      double size;
      t.add_row({json_str(s, "name", "?"), or_none(json_str(s, "created_at")),
                 json_num(s, "size_bytes", size) ? format_bytes(size) : kNone});
    }
  }
  return t.render();
}

}  // namespace nimbus::cli
