// The region's private network (docs/cloud.md, "Networks"): the default VPC, one default
// subnet per zone, and the address arithmetic behind the allocation of instances' private
// addresses. The Cloud's operations on them are in networks.cpp (declared in cloud.h).
//
//   default VPC      172.31.0.0/16, IsDefault, VNI kDefaultVni, id derived from the region
//   default subnets  172.31.0.0/20, 172.31.16.0/20, ... one per zone (at most 16)
//   an address       /addresses/SUBNET/IP = {"instance": ID}, created compared on revision
//                    0 in the launch's transaction, deleted when the instance terminates
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nimbus::cloud {

inline constexpr const char* kDefaultVpcCidr = "172.31.0.0/16";
inline constexpr unsigned kDefaultSubnetPrefix = 20;
inline constexpr unsigned kDefaultVni = 1;
inline constexpr unsigned kMaxVni = 16777215;
// What the hosts' tunnels leave of a 1500-byte path (VXLAN-style encapsulation: 50 bytes).
inline constexpr unsigned kTunnelMtu = 1450;

struct Ipv4Cidr {
  uint32_t base = 0;  // the network address (host bits zero)
  unsigned prefix = 32;

  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  bool contains(uint32_t ip) const {
    return prefix == 0 || (ip >> (32 - prefix)) == (base >> (32 - prefix));
  }
  uint32_t gateway() const { return base + 1; }
  // EC2's rule: the network address, .1 (router), .2 (DNS), .3 (reserved) and the
  // broadcast address are never an instance's.
  bool assignable(uint32_t ip) const {
    return contains(ip) && ip - base >= 4 && ip - base + 1 < size();
  }
  uint64_t assignable_count() const { return size() > 5 ? size() - 5 : 0; }
  std::string text() const;  // "172.31.16.0/20"
};

// Dotted-quad IPv4 only (four decimal parts 0-255, no leading zeros beyond "0").
std::optional<uint32_t> parse_ipv4(std::string_view text);
std::string format_ipv4(uint32_t ip);
// "A.B.C.D/N" with N 0-32 and no host bits set.
std::optional<Ipv4Cidr> parse_cidr(std::string_view text);
// A host's tunnel endpoint "A.B.C.D:PORT": a unicast IPv4 (not 0.0.0.0, not multicast or
// broadcast) and a port 1-65535.
bool valid_tunnel_endpoint(std::string_view text);

// Ids of the region's default VPC and of a zone's default subnet: derived from the names,
// so every start of the control plane (and every replica) finds the same ones.
std::string default_vpc_id(const std::string& region);
std::string default_subnet_id(const std::string& region, const std::string& zone);

// The store key of an allocated address.
std::string address_key(const std::string& subnet_id, const std::string& ip);

}  // namespace nimbus::cloud
