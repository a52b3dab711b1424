// The region's private network: the default VPC and subnets, instances' addresses, the
// hosts' tunnel peers (networks.h).
#include "cloud/networks.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "cloud/cloud.h"
#include "cloud/sigv4.h"

namespace nimbus::cloud {

namespace {

constexpr int kInitAttempts = 20;

std::optional<unsigned> parse_decimal(std::string_view text, unsigned max) {
  if (text.empty() || text.size() > 10 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v > max) return std::nullopt;
  return v;
}

std::string vpc_key(const std::string& id) { return kVpcsPrefix + id; }
std::string subnet_key(const std::string& id) { return kSubnetsPrefix + id; }

}  // namespace

std::string Ipv4Cidr::text() const { return fmt::format("{}/{}", format_ipv4(base), prefix); }

std::optional<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t ip = 0;
  for (int part = 0; part < 4; ++part) {
    const size_t dot = part < 3 ? text.find('.') : text.size();
    if (dot == std::string_view::npos) return std::nullopt;
    auto v = parse_decimal(text.substr(0, dot), 255);
    if (!v) return std::nullopt;
    ip = (ip << 8) | *v;
    text = part < 3 ? text.substr(dot + 1) : std::string_view();
  }
  return ip;
}

std::string format_ipv4(uint32_t ip) {
  return fmt::format("{}.{}.{}.{}", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

std::optional<Ipv4Cidr> parse_cidr(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = parse_ipv4(text.substr(0, slash));
  auto prefix = parse_decimal(text.substr(slash + 1), 32);
  if (!ip || !prefix) return std::nullopt;
  const uint32_t mask = *prefix == 0 ? 0 : ~uint32_t{0} << (32 - *prefix);
  if ((*ip & ~mask) != 0) return std::nullopt;
  return Ipv4Cidr{*ip, *prefix};
}

bool valid_tunnel_endpoint(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  auto ip = parse_ipv4(text.substr(0, colon));
  auto port = parse_decimal(text.substr(colon + 1), 65535);
  if (!ip || !port || *port == 0) return false;
  return *ip != 0 && (*ip >> 28) != 0xe && *ip != 0xffffffffu;
}

std::string default_vpc_id(const std::string& region) {
  return "vpc-" + sha256_hex("default-vpc/" + region).substr(0, 17);
}

std::string default_subnet_id(const std::string& region, const std::string& zone) {
  return "subnet-" + sha256_hex("default-subnet/" + region + "/" + zone).substr(0, 17);
}

std::string address_key(const std::string& subnet_id, const std::string& ip) {
  return kAddressesPrefix + subnet_id + "/" + ip;
}

Status Cloud::init_networks() {
  const std::string vpc_id = default_vpc_id(options_.region);
  const auto vpc_cidr = *parse_cidr(kDefaultVpcCidr);
  for (int attempt = 0; attempt < kInitAttempts; ++attempt) {
    auto vpc_kv = store_.get(vpc_key(vpc_id));
    if (!vpc_kv.ok()) return vpc_kv.status();
    VpcRecord vpc;
    if (*vpc_kv) {
      auto v = vpc_from_json((*vpc_kv)->value);
      if (!v.ok()) return v.status();
      vpc = *v;
    } else {
      vpc.id = vpc_id;
      vpc.cidr_block = kDefaultVpcCidr;
      vpc.owner_id = options_.account_id;
      vpc.is_default = true;
      vpc.vni = kDefaultVni;
    }
    auto all = subnets();
    if (!all.ok()) return Status::unavailable(all.error().message);
    std::set<uint32_t> taken;  // /20 blocks of the VPC already a subnet's
    for (const auto& s : *all) {
      if (s.vpc_id != vpc_id) continue;
      if (auto c = parse_cidr(s.cidr_block)) taken.insert(c->base);
    }
    std::vector<Compare> compares = {{vpc_key(vpc_id), *vpc_kv ? (*vpc_kv)->mod_revision : 0}};
    std::vector<Op> ops;
    std::vector<SubnetRecord> created;
    for (const auto& zone : options_.zones) {
      const std::string id = default_subnet_id(options_.region, zone);
      if (std::any_of(all->begin(), all->end(), [&](const auto& s) { return s.id == id; }))
        continue;
      std::optional<uint32_t> block;
      const uint32_t step = uint32_t{1} << (32 - kDefaultSubnetPrefix);
      for (uint32_t b = vpc_cidr.base; vpc_cidr.contains(b); b += step) {
        if (!taken.count(b)) {
          block = b;
          break;
        }
      }
      if (!block) {
        spdlog::warn("zone {} gets no default subnet: the default VPC {} has no free /{} left",
                     zone, kDefaultVpcCidr, kDefaultSubnetPrefix);
        continue;
      }
      taken.insert(*block);
      SubnetRecord s;
      s.id = id;
      s.vpc_id = vpc_id;
      s.zone = zone;
      s.cidr_block = Ipv4Cidr{*block, kDefaultSubnetPrefix}.text();
      s.owner_id = options_.account_id;
      s.default_for_az = true;
      compares.push_back({subnet_key(id), 0});
      ops.push_back({Op::Kind::kPut, subnet_key(id), to_json(s).dump()});
      created.push_back(s);
    }
    if (*vpc_kv && ops.empty()) break;  // all there
    // The VPC is written with its new subnets (unchanged when it existed), so two control
    // planes starting at once never give two zones the same block.
    ops.push_back({Op::Kind::kPut, vpc_key(vpc_id), to_json(vpc).dump()});
    auto r = store_.txn(compares, ops);
    if (!r.ok()) return r.status();
    if (!r->succeeded) continue;
    if (!*vpc_kv) spdlog::info("default VPC {} ({}, VNI {})", vpc_id, vpc.cidr_block, vpc.vni);
    for (const auto& s : created)
      spdlog::info("default subnet {} of {}: {}", s.id, s.zone, s.cidr_block);
    break;
  }
  // Security groups from before VPCs named a placeholder VPC.
  auto groups = store_.list(kSecurityGroupsPrefix);
  if (!groups.ok()) return groups.status();
  for (const KeyValue& kv : *groups) {
    auto g = security_group_from_json(kv.value);
    if (!g.ok() || (g->vpc_id != "vpc-default" && !g->vpc_id.empty())) continue;
    g->vpc_id = vpc_id;
    auto r =
        store_.txn({{kv.key, kv.mod_revision}}, {{Op::Kind::kPut, kv.key, to_json(*g).dump()}});
    if (!r.ok()) return r.status();
  }
  return Status();
}

Ec2Result<std::vector<VpcRecord>> Cloud::vpcs() {
  auto all = store_.list(kVpcsPrefix);
  if (!all.ok()) return from_status(all.status());
  std::vector<VpcRecord> out;
  for (const KeyValue& kv : *all) {
    auto v = vpc_from_json(kv.value);
    if (!v.ok()) return from_status(v.status());
    out.push_back(std::move(*v));
  }
  return out;
}

Ec2Result<std::vector<SubnetRecord>> Cloud::subnets() {
  auto all = store_.list(kSubnetsPrefix);
  if (!all.ok()) return from_status(all.status());
  std::vector<SubnetRecord> out;
  for (const KeyValue& kv : *all) {
    auto s = subnet_from_json(kv.value);
    if (!s.ok()) return from_status(s.status());
    out.push_back(std::move(*s));
  }
  return out;
}

Ec2Result<SubnetRecord> Cloud::subnet(const std::string& id) {
  if (!is_id(id, "subnet"))
    return ec2_error("InvalidSubnetID.Malformed", fmt::format("Invalid id: \"{}\"", id));
  auto kv = store_.get(subnet_key(id));
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv)
    return ec2_error("InvalidSubnetID.NotFound",
                     fmt::format("The subnet ID '{}' does not exist", id));
  auto s = subnet_from_json((*kv)->value);
  if (!s.ok()) return from_status(s.status());
  return *s;
}

Ec2Result<std::set<uint32_t>> Cloud::used_addresses(const std::string& subnet_id) {
  const std::string prefix = std::string(kAddressesPrefix) + subnet_id + "/";
  auto all = store_.list(prefix);
  if (!all.ok()) return from_status(all.status());
  std::set<uint32_t> out;
  for (const KeyValue& kv : *all) {
    if (auto ip = parse_ipv4(std::string_view(kv.key).substr(prefix.size()))) out.insert(*ip);
  }
  return out;
}

Result<std::optional<nlohmann::json>> Cloud::vm_network(const InstanceRecord& inst) {
  if (inst.subnet_id.empty()) return std::optional<nlohmann::json>();
  auto s = subnet(inst.subnet_id);
  if (!s.ok()) return Status::not_found(s.error().message);
  auto vkv = store_.get(vpc_key(s->vpc_id));
  if (!vkv.ok()) return vkv.status();
  if (!*vkv) return Status::not_found(fmt::format("the VPC {} of {} is gone", s->vpc_id, s->id));
  auto vpc = vpc_from_json((*vkv)->value);
  if (!vpc.ok()) return vpc.status();
  auto cidr = parse_cidr(s->cidr_block);
  auto vpc_cidr = parse_cidr(vpc->cidr_block);
  auto ip = parse_ipv4(inst.private_ip);
  if (!cidr || !vpc_cidr || !ip || !cidr->contains(*ip) || !vpc_cidr->contains(*ip) ||
      vpc->vni < 1 || vpc->vni > kMaxVni)
    return Status::internal(fmt::format("instance {}: address {} does not fit subnet {} ({})",
                                        inst.id, inst.private_ip, s->id, s->cidr_block));
  // The guest's prefix is the VPC's, not the subnet's: the VPC is one network (one VNI) with
  // no router between its subnets, so an instance reaches every subnet's instances directly
  // (ARP over the switches and tunnels), as AWS's VPC router would route them. The gateway
  // stays the subnet's.
  return std::optional<nlohmann::json>(
      nlohmann::json{{"vni", vpc->vni},
                     {"address", fmt::format("{}/{}", inst.private_ip, vpc_cidr->prefix)},
                     {"gateway", format_ipv4(cidr->gateway())},
                     {"mtu", kTunnelMtu}});
}

Status Cloud::release_address(const InstanceRecord& inst) {
  if (inst.subnet_id.empty() || inst.private_ip.empty()) return Status();
  const std::string key = address_key(inst.subnet_id, inst.private_ip);
  for (int attempt = 0; attempt < kInitAttempts; ++attempt) {
    auto kv = store_.get(key);
    if (!kv.ok()) return kv.status();
    if (!*kv) return Status();
    nlohmann::json j = nlohmann::json::parse((*kv)->value, nullptr, false);
    if (!j.is_object() || j.value("instance", "") != inst.id) return Status();  // not its own
    auto r = store_.txn({{key, (*kv)->mod_revision}}, {{Op::Kind::kDelete, key, ""}});
    if (!r.ok()) return r.status();
    if (r->succeeded) return Status();
  }
  return Status::conflict("the address " + inst.private_ip + " keeps changing");
}

Result<nlohmann::json> Cloud::tunnel_peers(const std::string& self) {
  auto all = store_.list(kHostsPrefix);
  if (!all.ok()) return all.status();
  nlohmann::json peers = nlohmann::json::array();
  for (const KeyValue& kv : *all) {
    auto h = host_from_json(kv.value);
    if (!h.ok()) return h.status();
    if (h->id == self || h->tunnel_endpoint.empty() || !host_alive(h->id)) continue;
    peers.push_back({{"host", h->id}, {"endpoint", h->tunnel_endpoint}});
  }
  return peers;
}

}  // namespace nimbus::cloud
