#include "config/device_json.h"

#include <fmt/format.h>

#include "common/mac.h"

namespace nimbus::config {

Result<PortForward> forward_from_json(const json& j, const std::string& what) {
  if (Status s = check_object(
          j, what, {"protocol", "host_address", "host_port", "guest_address", "guest_port"});
      !s.ok()) {
    return s;
  }
  PortForward f;
  uint64_t host_port = 0, guest_port = 0;
  Status s = get_string(j, "protocol", what, f.protocol, false);
  if (s.ok()) s = get_string(j, "host_address", what, f.host_address, false);
  if (s.ok()) s = get_uint(j, "host_port", what, 1, 65535, host_port, true);
  if (s.ok()) s = get_string(j, "guest_address", what, f.guest_address, false);
  if (s.ok()) s = get_uint(j, "guest_port", what, 1, 65535, guest_port, true);
  if (!s.ok()) return s;
  if (f.protocol != "tcp" && f.protocol != "udp") {
    return Status::error(fmt::format("{}: protocol '{}' is not tcp or udp", what, f.protocol));
  }
  if (!f.host_address.empty() && !parse_ipv4(f.host_address)) {
    return Status::error(
        fmt::format("{}: host_address '{}' is not an IPv4 address", what, f.host_address));
  }
  if (!f.guest_address.empty() && !parse_ipv4(f.guest_address)) {
    return Status::error(
        fmt::format("{}: guest_address '{}' is not an IPv4 address", what, f.guest_address));
  }
  f.host_port = static_cast<uint16_t>(host_port);
  f.guest_port = static_cast<uint16_t>(guest_port);
  return f;
}

Result<std::vector<PortForward>> forwards_from_json(const json& j, const std::string& what) {
  if (!j.is_array()) return Status::error(fmt::format("{} must be an array", what));
  if (j.size() > kMaxForwards)
    return Status::error(fmt::format("{}: at most {} forwards", what, kMaxForwards));
  std::vector<PortForward> out;
  for (size_t i = 0; i < j.size(); i++) {
    auto f = forward_from_json(j[i], fmt::format("{}[{}]", what, i));
    if (!f.ok()) return f.status();
    out.push_back(*f);
  }
  return out;
}

Result<DiskSpec> disk_from_json(const json& j, const std::string& id) {
  const std::string what = id.empty() ? "drive" : fmt::format("drive '{}'", id);
  if (Status s = check_object(
          j, what, {"drive_id", "path_on_host", "is_root_device", "is_read_only", "format"});
      !s.ok()) {
    return s;
  }
  DiskSpec d;
  Status s = get_string(j, "drive_id", what, d.id, id.empty());
  if (s.ok()) s = get_string(j, "path_on_host", what, d.path, true);
  if (s.ok()) s = get_bool(j, "is_root_device", what, d.root);
  if (s.ok()) s = get_bool(j, "is_read_only", what, d.read_only);
  if (s.ok()) s = get_string(j, "format", what, d.format, false);
  if (!s.ok()) return s;
  if (d.id.empty()) d.id = id;
  if (!id.empty() && d.id != id) {
    return Status::error(
        fmt::format("{}: drive_id '{}' in the body does not match the path", what, d.id));
  }
  if (!valid_id(d.id)) {
    return Status::error(
        fmt::format("drive_id '{}' must be 1-64 characters of A-Z a-z 0-9 _ . -", d.id));
  }
  if (d.path.empty()) return Status::error(fmt::format("{}: path_on_host is empty", what));
  if (d.format != "auto" && d.format != "raw" && d.format != "qcow2") {
    return Status::error(fmt::format("{}: format '{}' is not auto, raw or qcow2", what, d.format));
  }
  return d;
}

Result<NicSpec> nic_from_json(const json& j, const std::string& id) {
  const std::string what =
      id.empty() ? "network interface" : fmt::format("network interface '{}'", id);
  if (Status s = check_object(
          j, what,
          {"iface_id", "mode", "network", "host_forwards", "switch_path", "guest_mac", "mtu"});
      !s.ok()) {
    return s;
  }
  NicSpec n;
  Status s = get_string(j, "iface_id", what, n.id, id.empty());
  if (s.ok()) s = get_string(j, "mode", what, n.mode, false);
  if (s.ok()) s = get_string(j, "network", what, n.network, false);
  if (s.ok()) s = get_string(j, "switch_path", what, n.switch_path, false);
  if (s.ok()) s = get_string(j, "guest_mac", what, n.mac, false);
  if (!s.ok()) return s;
  if (n.id.empty()) n.id = id;
  if (!id.empty() && n.id != id) {
    return Status::error(
        fmt::format("{}: iface_id '{}' in the body does not match the path", what, n.id));
  }
  if (!valid_id(n.id)) {
    return Status::error(
        fmt::format("iface_id '{}' must be 1-64 characters of A-Z a-z 0-9 _ . -", n.id));
  }
  if (n.mode != "user" && n.mode != "switch") {
    return Status::error(fmt::format("{}: mode '{}' is not user or switch", what, n.mode));
  }
  if (j.contains("mtu")) {
    const json& m = j.at("mtu");
    if (!m.is_number_unsigned() || m.get<uint64_t>() < 68 || m.get<uint64_t>() > 65535)
      return Status::error(fmt::format("{}: mtu must be a whole number from 68 to 65535", what));
    n.mtu = m.get<unsigned>();
  }
  if (j.contains("host_forwards")) {
    auto fw = forwards_from_json(j.at("host_forwards"), fmt::format("{}: host_forwards", what));
    if (!fw.ok()) return fw.status();
    n.forwards = std::move(*fw);
  }
  if (n.mode == "switch" && n.switch_path.empty()) {
    return Status::error(fmt::format("{}: mode switch needs switch_path", what));
  }
  if (n.mode == "user" && !n.switch_path.empty()) {
    return Status::error(fmt::format("{}: switch_path is only for mode switch", what));
  }
  if (n.mode == "switch" && !n.forwards.empty()) {
    return Status::error(fmt::format("{}: host_forwards are only for mode user", what));
  }
  if (!n.network.empty()) {
    if (n.mode != "user")
      return Status::error(fmt::format("{}: network is only for mode user", what));
    if (auto net = parse_user_network(n.network); !net.ok()) {
      return Status::error(fmt::format("{}: {}", what, net.message()));
    }
  }
  if (!n.mac.empty()) {
    auto mac = parse_mac(n.mac);
    if (!mac.ok()) return Status::error(fmt::format("{}: guest_mac {}", what, mac.message()));
    n.mac = format_mac(*mac);
  } else {
    n.mac = format_mac(random_mac());
  }
  return n;
}

json to_json(const PortForward& f) {
  json one = {{"protocol", f.protocol}, {"host_port", f.host_port}, {"guest_port", f.guest_port}};
  if (!f.host_address.empty()) one["host_address"] = f.host_address;
  if (!f.guest_address.empty()) one["guest_address"] = f.guest_address;
  return one;
}

json to_json(const DiskSpec& d) {
  return {{"drive_id", d.id},
          {"path_on_host", d.path},
          {"is_root_device", d.root},
          {"is_read_only", d.read_only},
          {"format", d.format}};
}

json to_json(const NicSpec& n) {
  json nic = {{"iface_id", n.id}, {"mode", n.mode}, {"guest_mac", n.mac}};
  if (n.mode == "switch") nic["switch_path"] = n.switch_path;
  if (n.mtu != 0) nic["mtu"] = n.mtu;
  if (n.mode == "user") {
    if (!n.network.empty()) nic["network"] = n.network;
    json fw = json::array();
    for (const PortForward& f : n.forwards) fw.push_back(to_json(f));
    nic["host_forwards"] = fw;
  }
  return nic;
}

}  // namespace nimbus::config
