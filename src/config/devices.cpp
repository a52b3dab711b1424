#include "config/devices.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>

namespace nimbus::config {

namespace {

uint32_t prefix_mask(int prefix_len) {
  return prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len);
}

bool same_listener(const PortForward& a, const PortForward& b) {
  return a.protocol == b.protocol && a.host_port == b.host_port && host_ipv4(a) == host_ipv4(b);
}

}  // namespace

std::optional<uint32_t> parse_ipv4(std::string_view text) {
  // inet_pton, not inet_aton: "10.2" and other shorthands are refused.
  in_addr addr{};
  if (inet_pton(AF_INET, std::string(text).c_str(), &addr) != 1) return std::nullopt;
  return ntohl(addr.s_addr);
}

std::string format_ipv4(uint32_t addr) {
  return fmt::format("{}.{}.{}.{}", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
                     addr & 0xff);
}

Result<UserNetwork> parse_user_network(std::string_view value) {
  const std::string bad = "net=" + std::string(value) + ": ";
  const size_t slash = value.find('/');
  if (slash == std::string_view::npos)
    return Status::error(bad + "expected ADDR/PREFIX like 10.0.2.0/24");
  auto addr = parse_ipv4(value.substr(0, slash));
  if (!addr)
    return Status::error(bad + "bad address '" + std::string(value.substr(0, slash)) + "'");
  std::string_view len_text = value.substr(slash + 1);
  int len = -1;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (len_text.empty() || ec != std::errc() || end != len_text.data() + len_text.size() ||
      len < 8 || len > 27) {
    return Status::error(bad + "bad prefix length '" + std::string(len_text) + "' (expected 8-27)");
  }
  if ((*addr & ~prefix_mask(len)) != 0) {
    return Status::error(bad + "host bits set (did you mean " +
                         format_ipv4(*addr & prefix_mask(len)) + "/" + std::to_string(len) + "?)");
  }
  return UserNetwork{*addr, len};
}

UserNetwork user_network_of(const NicSpec& nic) {
  if (nic.network.empty()) return UserNetwork{};
  auto net = parse_user_network(nic.network);
  return net.ok() ? *net : UserNetwork{};
}

uint32_t host_ipv4(const PortForward& f) {
  return f.host_address.empty() ? 0x7f000001 : parse_ipv4(f.host_address).value_or(0x7f000001);
}

uint32_t guest_ipv4(const PortForward& f, const UserNetwork& net) {
  const uint32_t dhcp = net.network | 15;
  return f.guest_address.empty() ? dhcp : parse_ipv4(f.guest_address).value_or(dhcp);
}

std::string format_forward(const PortForward& f) {
  return fmt::format("{}:{}:{}-{}:{}", f.protocol, f.host_address, f.host_port, f.guest_address,
                     f.guest_port);
}

Status check_user_forwards(const NicSpec& nic) {
  UserNetwork net;
  if (!nic.network.empty()) {
    auto parsed = parse_user_network(nic.network);
    if (!parsed.ok()) return parsed.status();
    net = *parsed;
  }
  const uint32_t mask = prefix_mask(net.prefix_len);
  for (size_t i = 0; i < nic.forwards.size(); i++) {
    const PortForward& f = nic.forwards[i];
    if (f.protocol != "tcp" && f.protocol != "udp") {
      return Status::error(fmt::format("hostfwd={}: unknown protocol '{}' (expected tcp or udp)",
                                       format_forward(f), f.protocol));
    }
    for (const std::string* a : {&f.host_address, &f.guest_address}) {
      if (!a->empty() && !parse_ipv4(*a)) {
        return Status::error(
            fmt::format("hostfwd={}: bad address '{}' (expected an IPv4 address like 127.0.0.1)",
                        format_forward(f), *a));
      }
    }
    if (f.host_port == 0 || f.guest_port == 0) {
      return Status::error(
          fmt::format("hostfwd={}: bad port (expected 1-65535)", format_forward(f)));
    }
    const uint32_t guest = guest_ipv4(f, net);
    if ((guest & mask) != net.network) {
      return Status::error(fmt::format(
          "hostfwd={}: guest address {} is outside the user network {}/{}", format_forward(f),
          format_ipv4(guest), format_ipv4(net.network), net.prefix_len));
    }
    for (size_t j = 0; j < i; j++) {
      if (same_listener(nic.forwards[j], f)) {
        return Status::error(fmt::format("hostfwd={}: host port {} is forwarded twice",
                                         format_forward(f), f.host_port));
      }
    }
  }
  return {};
}

}  // namespace nimbus::config
