#include "host/metrics.h"

#include <fmt/format.h>

#include <functional>

namespace nimbus::host {

std::string prometheus_text(const HostInfo& h, const std::vector<VmInfo>& vms) {
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto kinds = [](const ResourceLine& r) {
    return std::vector<std::pair<const char*, uint64_t>>{
        {"capacity", r.capacity}, {"allocated", r.allocated}, {"available", r.available}};
  };
  metric("nimbus_host_vcpus", "gauge",
         "vCPUs of the host: capacity (after overcommit), allocated, available");
  for (auto [k, v] : kinds(h.capacity.cpus))
    out += fmt::format("nimbus_host_vcpus{{kind=\"{}\"}} {}\n", k, v);
  metric("nimbus_host_memory_bytes", "gauge",
         "memory for VMs: capacity, allocated (RAM + overhead), available");
  for (auto [k, v] : kinds(h.capacity.memory_mib)) {
    out += fmt::format("nimbus_host_memory_bytes{{kind=\"{}\"}} {}\n", k, v << 20);
  }
  metric("nimbus_host_disk_bytes", "gauge", "disk for VMs: capacity, allocated, available");
  for (auto [k, v] : kinds(h.capacity.disk_mib)) {
    out += fmt::format("nimbus_host_disk_bytes{{kind=\"{}\"}} {}\n", k, v << 20);
  }
  metric("nimbus_host_vms", "gauge", "VMs defined on the host and VMs with a running VMM process");
  out += fmt::format("nimbus_host_vms{{kind=\"total\"}} {}\n", h.vms_total);
  out += fmt::format("nimbus_host_vms{{kind=\"running\"}} {}\n", h.vms_running);

  // Per-VM series; the figures are doubles (as Prometheus has them) computed as before.
  const VmUsage none;
  auto use = [&none](const VmInfo& v) -> const VmUsage& { return v.usage ? *v.usage : none; };
  struct Series {
    const char* name;
    const char* type;
    const char* help;
    std::function<double(const VmInfo&)> value;
  };
  const std::vector<Series> series = {
      {"nimbus_vm_up", "gauge", "1 when the VM's VMM process runs",
       [](const VmInfo& v) { return v.record.pid == 0 ? 0.0 : 1.0; }},
      {"nimbus_vm_vcpus", "gauge", "vCPUs of the VM",
       [](const VmInfo& v) { return double(v.record.cpus); }},
      {"nimbus_vm_memory_limit_bytes", "gauge", "guest RAM of the VM",
       [](const VmInfo& v) { return double(v.record.memory_mib) * 1048576.0; }},
      {"nimbus_vm_cpu_seconds_total", "counter", "host CPU time of the VMM process",
       [&](const VmInfo& v) { return use(v).cpu_seconds; }},
      {"nimbus_vm_resident_memory_bytes", "gauge",
       "resident memory of the VMM process (guest RAM touched + overhead)",
       [&](const VmInfo& v) { return use(v).memory_mib * 1048576.0; }},
      {"nimbus_vm_disk_used_bytes", "gauge", "host disk space used by the VM's overlay",
       [&](const VmInfo& v) { return use(v).disk_used_mib * 1048576.0; }},
      {"nimbus_vm_disk_read_bytes_total", "counter", "bytes the guest read from its disk",
       [&](const VmInfo& v) { return double(use(v).disk_read_bytes); }},
      {"nimbus_vm_disk_written_bytes_total", "counter", "bytes the guest wrote to its disk",
       [&](const VmInfo& v) { return double(use(v).disk_write_bytes); }},
      {"nimbus_vm_network_receive_bytes_total", "counter", "bytes received by the guest's NICs",
       [&](const VmInfo& v) { return double(use(v).net_rx_bytes); }},
      {"nimbus_vm_network_transmit_bytes_total", "counter", "bytes sent by the guest's NICs",
       [&](const VmInfo& v) { return double(use(v).net_tx_bytes); }},
      {"nimbus_vm_restarts_total", "counter", "times nimbusd restarted the VM after it ended",
       [](const VmInfo& v) { return double(v.record.restarts); }},
  };
  metric("nimbus_vm_state", "gauge", "1 for the VM's current state");
  for (const VmInfo& v : vms) {
    out +=
        fmt::format("nimbus_vm_state{{vm=\"{}\",state=\"{}\"}} 1\n", v.record.name, v.record.state);
  }
  for (const Series& s : series) {
    metric(s.name, s.type, s.help);
    for (const VmInfo& v : vms)
      out += fmt::format("{}{{vm=\"{}\"}} {}\n", s.name, v.record.name, s.value(v));
  }
  return out;
}

}  // namespace nimbus::host
