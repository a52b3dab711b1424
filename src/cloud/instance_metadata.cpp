#include "cloud/instance_metadata.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <string_view>

#include "cloud/cloud.h"
#include "config/metadata_config.h"

namespace nimbus::cloud {

namespace {

using nlohmann::json;

std::string dashed(std::string ip) {
  std::replace(ip.begin(), ip.end(), '.', '-');
  return ip;
}

// A key name as one IMDS path segment: EC2 allows any ASCII in key names, the tree no '/'
// nor control characters, and "0=NAME" at most 255 bytes.
std::string key_entry(const std::string& key_name) {
  std::string name = key_name.substr(0, 253);
  for (char& c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '/') c = '_';
  }
  return "0=" + (name.empty() ? std::string("key") : name);
}

// A tag key EC2 serves under meta-data/tags/instance/ (and the tree can hold as one name).
bool metadata_tag_key(const std::string& key) {
  if (key.empty() || key.size() > 255 || key == "." || key == "..") return false;
  for (unsigned char c : key) {
    if (!std::isalnum(c) &&
        std::string_view("+-.,_:@").find(static_cast<char>(c)) == std::string_view::npos)
      return false;
  }
  return true;
}

}  // namespace

std::string private_dns_name(const std::string& ip, const std::string& region) {
  return fmt::format("ip-{}.{}.compute.internal", dashed(ip), region);
}

json instance_metadata_data(const InstanceRecord& inst, const MetadataContext& ctx) {
  json md = {{"ami-id", inst.image_id},
             {"ami-launch-index", std::to_string(inst.launch_index)},
             {"instance-id", inst.id},
             {"instance-type", inst.instance_type},
             {"reservation-id", inst.reservation_id},
             {"placement", {{"availability-zone", inst.zone}, {"region", ctx.region}}}};
  std::string groups;
  for (const auto& g : ctx.security_group_names) groups += (groups.empty() ? "" : "\n") + g;
  md["security-groups"] = groups;
  if (!inst.private_ip.empty()) {
    const std::string host = private_dns_name(inst.private_ip, ctx.region);
    md["local-ipv4"] = inst.private_ip;
    md["hostname"] = host;
    md["local-hostname"] = host;
  }
  if (!inst.public_ip.empty()) {
    md["public-ipv4"] = inst.public_ip;
    // As DescribeInstances' dnsName.
    md["public-hostname"] =
        fmt::format("ec2-{}.{}.compute.nimbus", dashed(inst.public_ip), ctx.region);
  }
  if (!ctx.mac.empty()) md["mac"] = ctx.mac;
  if (!inst.key_name.empty() && !inst.public_key.empty()) {
    md["public-keys"] = {{key_entry(inst.key_name), {{"openssh-key", inst.public_key}}}};
  }
  if (inst.metadata_options.instance_metadata_tags == "enabled") {
    json tags = json::object();
    for (const auto& [k, v] : inst.tags) {
      if (metadata_tag_key(k)) tags[k] = v;
    }
    md["tags"] = {{"instance", tags}};
  }
  const json document = {{"accountId", inst.owner_id.empty() ? ctx.account_id : inst.owner_id},
                         {"architecture", "riscv64"},
                         {"availabilityZone", inst.zone},
                         {"imageId", inst.image_id},
                         {"instanceId", inst.id},
                         {"instanceType", inst.instance_type},
                         {"pendingTime", inst.launch_time},
                         {"privateIp", inst.private_ip},
                         {"region", ctx.region},
                         {"version", "2017-09-30"}};
  json data = {{"meta-data", md},
               {"dynamic", {{"instance-identity", {{"document", document.dump(2)}}}}}};
  // The VMM keeps user data as base64 and serves it decoded; what is not base64 (the EC2
  // API takes it as it comes) is left out rather than refused by the host.
  if (!inst.user_data.empty() && config::decode_base64(inst.user_data)) {
    data["user-data"] = inst.user_data;
  }
  return data;
}

config::MetadataOptions vmm_metadata_options(const InstanceMetadataOptions& o) {
  config::MetadataOptions m;
  m.tokens_required = o.http_tokens == "required";
  m.endpoint_enabled = o.http_endpoint != "disabled";
  m.hop_limit = std::clamp(o.http_put_response_hop_limit, 1u, config::kMaxMetadataHopLimit);
  return m;
}

json instance_metadata(const InstanceRecord& inst, const MetadataContext& ctx) {
  json m = config::to_json(vmm_metadata_options(inst.metadata_options));
  m["data"] = instance_metadata_data(inst, ctx);
  return m;
}

std::string metadata_hash(const json& metadata) {
  // FNV-1a, 64 bits: only compared with itself, never trusted for integrity.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : metadata.dump()) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

MetadataContext metadata_context(Cloud& cloud, const InstanceRecord& inst, const std::string& mac) {
  MetadataContext ctx;
  ctx.region = cloud.options().region;
  ctx.account_id = cloud.options().account_id;
  ctx.mac = mac;
  if (!inst.security_groups.empty()) {
    auto groups = cloud.security_groups();
    if (groups.ok()) {
      std::map<std::string, std::string> names;
      for (const auto& g : *groups) names[g.id] = g.name;
      for (const auto& id : inst.security_groups) {
        auto it = names.find(id);
        if (it != names.end()) ctx.security_group_names.push_back(it->second);
      }
    }
  }
  return ctx;
}

}  // namespace nimbus::cloud
