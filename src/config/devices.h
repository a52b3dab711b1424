// The typed configuration of a VM's disks and network cards, as every edge hands it on:
// `--disk`/`--net` flags (device_flags.h), the VMM's JSON (device_json.h, also what nimbusd
// writes to config.json). Parsed once, at the edge; below it nothing is a string to parse
// again. No emulator dependency: nimbusd uses these too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nimbus::config {

// A host port forwarded to the guest on a user-mode (slirp) network.
struct PortForward {
  std::string protocol = "tcp";  // tcp or udp
  std::string host_address;  // dotted quad; empty: 127.0.0.1 (never the whole network by default)
  uint16_t host_port = 0;
  std::string guest_address;  // dotted quad; empty: the guest's DHCP address (.15 of the network)
  uint16_t guest_port = 0;
  bool operator==(const PortForward&) const = default;
};

// A virtio network card.
struct NicSpec {
  std::string id;
  std::string mode = "user";          // user (libslirp NAT) or switch (a host switch directory)
  std::string network;                // user: ADDR/PREFIX of the user network; empty: 10.0.2.0/24
  std::vector<PortForward> forwards;  // user only
  std::string switch_path;            // switch only
  std::string mac;  // 52:54:00:xx:xx:xx; empty only before an edge chose a random one
  // The MTU the device tells the guest (virtio-net's VIRTIO_NET_F_MTU), 68-65535; 0: none
  // (the guest's default, 1500).
  unsigned mtu = 0;
  bool operator==(const NicSpec&) const = default;
};

// A virtio disk.
struct DiskSpec {
  std::string id;
  std::string path;
  bool root = false;  // the kernel's root= (the bundled kernel then boots without initramfs)
  bool read_only = false;
  std::string format = "auto";  // auto (qcow2 if the file has the magic), raw or qcow2
  bool operator==(const DiskSpec&) const = default;
};

// IPv4 addresses in host byte order (10.0.2.2 is 0x0a000202). Dotted quads only.
std::optional<uint32_t> parse_ipv4(std::string_view text);
std::string format_ipv4(uint32_t addr);

// A user network: .2 the gateway/host, .3 DNS, DHCP from .15.
struct UserNetwork {
  uint32_t network = 0x0a000200;  // 10.0.2.0
  int prefix_len = 24;
};
// "10.0.2.0/24": prefix 8-27 (room for .2, .3 and the DHCP range), no host bits.
Result<UserNetwork> parse_user_network(std::string_view text);
// The NIC's user network (the default if it names none). Call on a checked NicSpec.
UserNetwork user_network_of(const NicSpec& nic);

// A forward's addresses with their defaults filled in. Call on a checked forward.
uint32_t host_ipv4(const PortForward& f);
uint32_t guest_ipv4(const PortForward& f, const UserNetwork& net);

// The forward in the flag's syntax, "tcp:127.0.0.1:8080-:80" (for messages).
std::string format_forward(const PortForward& f);

// Checks a user NIC's forwards against each other and its network: every guest address in
// the network, no host address/port/protocol forwarded twice. Errors name the forward.
Status check_user_forwards(const NicSpec& nic);

}  // namespace nimbus::config
