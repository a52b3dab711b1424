// The API edge's outbound half: error codes to HTTP statuses, typed results to the JSON
// bodies clients have always received.
#include "vmm/api.h"

namespace nimbus::vmm {

int http_status(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kConflict:
      return 409;
    case Code::kPermissionDenied:
      return 403;
    case Code::kUnimplemented:
      return 501;
    case Code::kUnavailable:
      return 503;
    case Code::kDeadlineExceeded:
      return 504;
    case Code::kInsufficientCapacity:
      return 507;
    case Code::kInternal:
      return 500;
    case Code::kUnknown:
      return 400;
  }
  return 500;
}

ApiResponse error_response(const Status& status) {
  if (status.ok()) return ApiResponse::no_content();
  return ApiResponse::error(http_status(status.code()), status.message());
}

namespace {

json drive_json(const DriveInfo& d) {
  json j = {{"drive_id", d.id}, {"path_on_host", d.path}};
  if (d.stats) {
    j["read_requests"] = d.stats->read_requests;
    j["write_requests"] = d.stats->write_requests;
    j["flush_requests"] = d.stats->flush_requests;
    j["bytes_read"] = d.stats->bytes_read;
    j["bytes_written"] = d.stats->bytes_written;
    j["errors"] = d.stats->errors;
  }
  return j;
}

json nic_json(const NicInfo& n) {
  json j = {{"iface_id", n.id}, {"guest_mac", n.mac}};
  if (n.stats) {
    j["rx_packets"] = n.stats->rx_packets;
    j["rx_bytes"] = n.stats->rx_bytes;
    j["rx_dropped"] = n.stats->rx_dropped;
    j["tx_packets"] = n.stats->tx_packets;
    j["tx_bytes"] = n.stats->tx_bytes;
    j["tx_dropped"] = n.stats->tx_dropped;
  }
  return j;
}

}  // namespace

json to_json(const InstanceInfo& info) {
  json j;
  j["id"] = info.id;
  j["state"] = state_name(info.state);
  j["vmm_pid"] = info.vmm_pid;
  j["boots"] = info.boots;
  j["last_stop"] = info.last_stop;
  j["uptime_s"] = info.uptime_s;
  j["machine-config"] = {{"vcpu_count", info.shape.vcpus}, {"mem_size_mib", info.shape.mem_mib}};
  json vcpus = json::array();
  for (const VcpuInfo& v : info.vcpus) {
    vcpus.push_back({{"index", v.index}, {"instructions", v.instructions}, {"state", v.state}});
  }
  j["vcpus"] = vcpus;
  j["memory"] = {{"guest_mib", info.shape.mem_mib}, {"vmm_rss_kib", info.vmm_rss_kib}};
  j["agent"] = {{"ready", info.agent_ready}};
  json drives = json::array(), nics = json::array(), virtio = json::array();
  for (const DriveInfo& d : info.drives) drives.push_back(drive_json(d));
  for (const NicInfo& n : info.nics) nics.push_back(nic_json(n));
  for (const VirtioSlotInfo& v : info.virtio) {
    virtio.push_back({{"slot", v.slot},
                      {"device_id", v.device_id},
                      {"status", v.status},
                      {"needs_reset", v.needs_reset}});
  }
  j["devices"] = {{"drives", drives}, {"network-interfaces", nics}, {"virtio", virtio}};
  return j;
}

json to_json(const DriveResized& r) { return {{"drive_id", r.id}, {"size_bytes", r.size_bytes}}; }

json to_json(const ShutdownResult& r) {
  return {{"graceful", r.graceful}, {"seconds", r.seconds}, {"last_stop", r.last_stop}};
}

json to_json(const SnapshotCreated& r) {
  return {{"snapshot_path", r.path},
          {"bytes", r.bytes},
          {"pages_stored", r.pages_stored},
          {"pages_total", r.pages_total},
          {"seconds", r.seconds}};
}

json to_json(const SnapshotLoaded& r) {
  return {{"state", state_name(r.state)}, {"seconds", r.seconds}};
}

}  // namespace nimbus::vmm
