#include "host/vm_network.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <set>

namespace nimbus::host {
using nlohmann::json;

namespace {

std::optional<uint32_t> ipv4(const std::string& text) {
  in_addr a{};
  if (text.empty() || text.size() > 15 || inet_pton(AF_INET, text.c_str(), &a) != 1)
    return std::nullopt;
  return ntohl(a.s_addr);
}

std::string dotted(uint32_t a) {
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

struct Cidr {
  uint32_t addr = 0;
  unsigned prefix = 0;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
};

std::optional<Cidr> parse_cidr(const std::string& text) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos || slash + 1 == text.size() || text.size() - slash - 1 > 2)
    return std::nullopt;
  auto a = ipv4(text.substr(0, slash));
  if (!a) return std::nullopt;
  unsigned p = 0;
  for (size_t i = slash + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    p = p * 10 + static_cast<unsigned>(text[i] - '0');
  }
  if (text[slash + 1] == '0' && p != 0) return std::nullopt;  // one spelling
  return Cidr{*a, p};
}

bool overlaps(const Cidr& a, uint32_t net, unsigned prefix) {
  const unsigned p = std::min(a.prefix, prefix);
  const uint32_t m = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
  return (a.addr & m) == (net & m);
}

// What the guest may not have on eth1: those would take its own loopback, link-local
// (the metadata service at 169.254.169.254) or user-network (eth0) routes away.
Status check_host_in_subnet(const std::string& what, uint32_t a, const Cidr& net) {
  if ((a & net.mask()) != (net.addr & net.mask()))
    return Status::invalid_argument(fmt::format("network: {} {} is outside {}/{}", what, dotted(a),
                                                dotted(net.addr & net.mask()), net.prefix));
  if ((a & ~net.mask()) == 0 || (a & ~net.mask()) == ~net.mask())
    return Status::invalid_argument(fmt::format(
        "network: {} {} is the network or broadcast address of its subnet", what, dotted(a)));
  return {};
}

}  // namespace

Result<VmNetwork> parse_vm_network(const json& j) {
  if (!j.is_object())
    return Status::invalid_argument("network must be an object {vni, address, gateway, mtu}");
  static const std::set<std::string> kFields = {"vni", "address", "gateway", "mtu"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (kFields.count(it.key()) == 0) {
      return Status::invalid_argument(fmt::format(
          "network: unknown field {} (accepted: address, gateway, mtu, vni)",
          json(it.key().substr(0, 64)).dump(-1, ' ', false, json::error_handler_t::replace)));
    }
  }
  VmNetwork n;
  const auto whole = [](const json& v, uint64_t lo, uint64_t hi) -> std::optional<uint64_t> {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      return std::nullopt;
    const uint64_t x = v.get<uint64_t>();
    if (x < lo || x > hi) return std::nullopt;
    return x;
  };
  if (!j.contains("vni")) return Status::invalid_argument("network: vni is required");
  auto vni = whole(j["vni"], 1, backends::Tunnel::kMaxVni);
  if (!vni)
    return Status::invalid_argument(
        fmt::format("network: vni must be a whole number from 1 to {}", backends::Tunnel::kMaxVni));
  n.vni = static_cast<uint32_t>(*vni);
  if (!j.contains("address") || !j["address"].is_string())
    return Status::invalid_argument(
        "network: address is required: the VM's address and prefix, such as \"172.31.16.5/20\"");
  n.address = j["address"].get<std::string>();
  auto cidr = parse_cidr(n.address);
  if (!cidr || cidr->prefix < 8 || cidr->prefix > 30) {
    return Status::invalid_argument(fmt::format(
        "network: address {} is not ADDRESS/PREFIX with a prefix of 8 to 30, such "
        "as \"172.31.16.5/20\"",
        json(n.address.substr(0, 64)).dump(-1, ' ', false, json::error_handler_t::replace)));
  }
  const uint32_t a = cidr->addr;
  const uint8_t first = static_cast<uint8_t>(a >> 24);
  if (first == 0 || first == 127 || first >= 224 || (a >> 16) == 0xa9fe) {
    return Status::invalid_argument(fmt::format(
        "network: address {} is not usable (0/8, loopback, link-local, multicast or reserved)",
        dotted(a)));
  }
  if (overlaps(*cidr, 0x0a000200, 24)) {
    return Status::invalid_argument(fmt::format(
        "network: {} overlaps the user network 10.0.2.0/24 of the VM's eth0", n.address));
  }
  if (Status s = check_host_in_subnet("address", a, *cidr); !s.ok()) return s;
  if (j.contains("gateway")) {
    auto gw = j["gateway"].is_string() ? ipv4(j["gateway"].get<std::string>()) : std::nullopt;
    if (!gw) return Status::invalid_argument("network: gateway must be an IPv4 address");
    if (Status s = check_host_in_subnet("gateway", *gw, *cidr); !s.ok()) return s;
    if (*gw == a)
      return Status::invalid_argument("network: the gateway cannot be the VM's own address");
    n.gateway = dotted(*gw);
  }
  if (j.contains("mtu")) {
    auto mtu = whole(j["mtu"], kMinNetworkMtu, kMaxNetworkMtu);
    if (!mtu)
      return Status::invalid_argument(fmt::format(
          "network: mtu must be a whole number from {} to {}", kMinNetworkMtu, kMaxNetworkMtu));
    n.mtu = static_cast<unsigned>(*mtu);
  }
  // One spelling from here on (inet_pton took no leading zeros).
  n.address = fmt::format("{}/{}", dotted(a), cidr->prefix);
  return n;
}

json to_json(const VmNetwork& n) {
  return {{"vni", n.vni},
          {"address", n.address},
          {"gateway", n.gateway.empty() ? json(nullptr) : json(n.gateway)},
          {"mtu", n.mtu},
          {"mac", network_mac(n)}};
}

std::string network_to_text(const std::optional<VmNetwork>& n) {
  if (!n) return "";
  json j = {{"vni", n->vni}, {"address", n->address}, {"mtu", n->mtu}};
  if (!n->gateway.empty()) j["gateway"] = n->gateway;
  return j.dump();
}

std::optional<VmNetwork> network_from_text(const std::string& text) {
  if (text.empty()) return std::nullopt;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  auto n = parse_vm_network(j);
  if (!n.ok()) return std::nullopt;
  return *n;
}

std::string network_switch_path(const std::string& state_dir, uint32_t vni) {
  return fmt::format("{}/net/vni-{}", state_dir, vni);
}

std::string network_host_address(const VmNetwork& n) {
  return n.address.substr(0, n.address.find('/'));
}

std::string network_mac(const VmNetwork& n) {
  const uint32_t a = ipv4(network_host_address(n)).value_or(0);
  return fmt::format("52:54:{:02x}:{:02x}:{:02x}:{:02x}", a >> 24, (a >> 16) & 0xff,
                     (a >> 8) & 0xff, a & 0xff);
}

std::string network_ip_arg(const VmNetwork& n, const std::string& hostname) {
  auto cidr = parse_cidr(n.address);
  const Cidr c = cidr.value_or(Cidr{0, 32});
  return fmt::format("ip={}::0.0.0.0:{}:{}:eth1:off", dotted(c.addr), dotted(c.mask()), hostname);
}

Result<std::vector<backends::TunnelPeer>> parse_tunnel_peers(const json& list) {
  if (!list.is_array())
    return Status::invalid_argument("peers must be an array of {\"host\", \"endpoint\"}");
  if (list.size() > backends::Tunnel::kMaxPeers)
    return Status::invalid_argument(
        fmt::format("at most {} tunnel peers", backends::Tunnel::kMaxPeers));
  std::vector<backends::TunnelPeer> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& p = list[i];
    if (!p.is_object() || p.size() != 2 || !p.contains("host") || !p.contains("endpoint") ||
        !p["host"].is_string() || !p["endpoint"].is_string()) {
      return Status::invalid_argument(fmt::format(
          "peers[{}] must be {{\"host\": ID, \"endpoint\": \"IPv4:PORT\"}} and nothing else", i));
    }
    out.push_back({p["host"].get<std::string>(), p["endpoint"].get<std::string>()});
  }
  return out;
}

json to_json(const std::vector<backends::TunnelPeer>& peers) {
  json a = json::array();
  for (const auto& p : peers) a.push_back({{"host", p.host}, {"endpoint", p.endpoint}});
  return a;
}

}  // namespace nimbus::host
