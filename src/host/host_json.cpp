#include "host/host_json.h"

#include "host/vm_launcher.h"

namespace nimbus::host {
using nlohmann::json;

json forward_json(const config::PortForward& f) {
  return {{"protocol", f.protocol},
          {"host_address", f.host_address},
          {"host_port", f.host_port},
          {"guest_port", f.guest_port}};
}

json to_json(const VmInfo& info) {
  const VmRecord& vm = info.record;
  json fwd = json::array();
  for (const config::PortForward& f : vm.forwards) fwd.push_back(forward_json(f));
  json j = {{"name", vm.name},
            {"image", vm.image},
            {"cpus", vm.cpus},
            {"memory_mib", vm.memory_mib},
            {"disk_mib", vm.disk_mib},
            {"forwards", fwd},
            {"restart_policy", vm.restart_policy},
            {"state", vm.state},
            {"desired_state", vm.desired_state},
            {"pid", vm.pid != 0 ? json(vm.pid) : json(nullptr)},
            {"uid", vm.uid},
            {"created_at", vm.created_at},
            {"started_at", vm.started_at},
            {"ready", info.ready},
            {"restarts", vm.restarts},
            {"last_exit", vm.last_exit},
            {"addresses",
             {{"user", info.user_address},
              {"host", info.host_address.empty() ? json(nullptr) : json(info.host_address)}}},
            {"cgroup", info.cgroup},
            {"console_socket", info.console_socket},
            {"console_log", info.console_log}};
  // The options only: the data holds user data, which is the owner's alone.
  j["metadata_options"] = vm.metadata ? config::to_json(vm.metadata->options) : json(nullptr);
  j["macs"] = {{"user", vm_user_mac(vm)}, {"host", vm_host_mac(vm)}};
  j["network"] = vm.network ? to_json(*vm.network) : json(nullptr);
  j["migration"] = info.migration;
  if (vm.network) j["addresses"]["private"] = info.private_address;
  if (info.usage) {
    const VmUsage& u = *info.usage;
    j["usage"] = {{"cpu_seconds", u.cpu_seconds},           {"memory_mib", u.memory_mib},
                  {"disk_used_mib", u.disk_used_mib},       {"disk_read_bytes", u.disk_read_bytes},
                  {"disk_write_bytes", u.disk_write_bytes}, {"net_rx_bytes", u.net_rx_bytes},
                  {"net_tx_bytes", u.net_tx_bytes}};
  }
  return j;
}

json to_json(const HostInfo& h) {
  json j = to_json(h.capacity);
  j["hostname"] = h.hostname;
  j["version"] = h.version;
  j["state_dir"] = h.state_dir;
  j["cgroup"] = h.cgroup;
  j["sandbox"] = h.sandbox;
  if (!h.sandbox_note.empty()) j["sandbox_note"] = h.sandbox_note;
  j["vm_overhead_mib"] = h.vm_overhead_mib;
  j["vms"] = {{"total", h.vms_total}, {"running", h.vms_running}};
  return j;
}

json to_json(const SnapshotInfo& s) {
  return {{"name", s.name},
          {"vm", s.vm},
          {"created_at", s.created_at},
          {"size_bytes", s.size_bytes},
          {"cpus", s.cpus},
          {"memory_mib", s.memory_mib}};
}

json to_json(const NetworkInfo& n) {
  if (!n.tunnel) return {{"tunnel", nullptr}};
  const backends::Tunnel::Stats& s = n.stats;
  return {{"tunnel",
           {{"listen", n.listen},
            {"endpoint", n.endpoint},
            {"peers", to_json(n.peers)},
            {"networks", n.vnis},
            {"counters",
             {{"tx_packets", s.tx_packets},
              {"tx_bytes", s.tx_bytes},
              {"tx_errors", s.tx_errors},
              {"tx_too_big", s.tx_too_big},
              {"rx_packets", s.rx_packets},
              {"rx_bytes", s.rx_bytes},
              {"rx_unknown_sender", s.rx_unknown_sender},
              {"rx_malformed", s.rx_malformed},
              {"rx_unknown_vni", s.rx_unknown_vni},
              {"rx_spoofed", s.rx_spoofed}}}}}};
}

HttpError http_error(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
      return {400, "BadRequest"};
    case Code::kNotFound:
      return {404, "NotFound"};
    case Code::kConflict:
      return {409, "Conflict"};
    case Code::kInsufficientCapacity:
      return {409, "InsufficientCapacity"};
    default:
      return {500, "Internal"};
  }
}

json error_json(std::string_view name, const std::string& message) {
  return {{"error", {{"code", name}, {"message", message}}}};
}

}  // namespace nimbus::host
