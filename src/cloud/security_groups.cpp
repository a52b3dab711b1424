// Security groups: their rules, and the forwards they open on an instance's public address.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "cloud/cloud.h"

namespace nimbus::cloud {

namespace {

// At most this many ports a group opens per instance: each is a listening socket of the
// instance's VMM (docs/cloud.md says why ranges are bounded).
constexpr int kMaxForwardedPorts = 256;

std::string group_key(const std::string& id) { return kSecurityGroupsPrefix + id; }

bool valid_group_name(const std::string& s) {
  if (s.empty() || s.size() > 255 || s.rfind("sg-", 0) == 0) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x20 && c < 0x7f; });
}

}  // namespace

Ec2Result<std::vector<SecurityGroup>> Cloud::security_groups() {
  auto all = store_.list(kSecurityGroupsPrefix);
  if (!all.ok()) return from_status(all.status());
  std::vector<SecurityGroup> out;
  for (const KeyValue& kv : *all) {
    auto g = security_group_from_json(kv.value);
    if (!g.ok()) return from_status(g.status());
    out.push_back(std::move(*g));
  }
  return out;
}

Ec2Result<SecurityGroup> Cloud::resolve_group(const std::string& id, const std::string& name) {
  if (!id.empty() && !is_id(id, "sg"))
    return ec2_error("InvalidGroupId.Malformed", fmt::format("Invalid id: \"{}\"", id));
  auto all = security_groups();
  if (!all.ok()) return all.error();
  for (const auto& g : *all) {
    if ((!id.empty() && g.id == id) || (id.empty() && g.name == name)) return g;
  }
  return ec2_error("InvalidGroup.NotFound",
                   fmt::format("The security group '{}' does not exist", id.empty() ? name : id));
}

Ec2Result<SecurityGroup> Cloud::create_security_group(const std::string& name,
                                                      const std::string& description,
                                                      const Tags& tags) {
  if (name.empty()) return ec2_error("MissingParameter", "GroupName is required");
  if (description.empty()) return ec2_error("MissingParameter", "GroupDescription is required");
  if (!valid_group_name(name))
    return ec2_error("InvalidParameterValue",
                     "GroupName must be 1-255 printable ASCII characters, not starting with sg-");
  if (description.size() > 255)
    return ec2_error("InvalidParameterValue", "GroupDescription is at most 255 characters");
  auto all = security_groups();
  if (!all.ok()) return all.error();
  for (const auto& g : *all) {
    if (g.name == name)
      return ec2_error("InvalidGroup.Duplicate",
                       fmt::format("The security group '{}' already exists", name));
  }
  SecurityGroup g;
  g.id = new_id("sg");
  g.name = name;
  g.description = description;
  g.owner_id = options_.account_id;
  g.vpc_id = default_vpc_id(options_.region);
  g.tags = tags;
  // The name is unique by a key of its own, so two creations racing cannot both win.
  const std::string name_key = "/security-group-names/" + name;
  auto r = store_.txn(
      {{group_key(g.id), 0}, {name_key, 0}},
      {{Op::Kind::kPut, group_key(g.id), to_json(g).dump()}, {Op::Kind::kPut, name_key, g.id}});
  if (!r.ok()) return from_status(r.status());
  if (!r->succeeded)
    return ec2_error("InvalidGroup.Duplicate",
                     fmt::format("The security group '{}' already exists", name));
  return g;
}

Ec2Result<bool> Cloud::delete_security_group(const std::string& id, const std::string& name) {
  auto g = resolve_group(id, name);
  if (!g.ok()) return g.error();
  if (g->name == "default")
    return ec2_error("CannotDelete", "The default security group cannot be deleted");
  auto insts = instances();
  if (!insts.ok()) return insts.error();
  for (const auto& i : *insts) {
    if (i.state == InstanceState::kTerminated) continue;
    if (std::find(i.security_groups.begin(), i.security_groups.end(), g->id) !=
        i.security_groups.end())
      return ec2_error("DependencyViolation",
                       fmt::format("resource {} has a dependent object ({})", g->id, i.id));
  }
  auto kv = store_.get(group_key(g->id));
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv) return ec2_error("InvalidGroup.NotFound", "The security group does not exist");
  auto r = store_.txn({{group_key(g->id), (*kv)->mod_revision}},
                      {{Op::Kind::kDelete, group_key(g->id), ""},
                       {Op::Kind::kDelete, "/security-group-names/" + g->name, ""}});
  if (!r.ok()) return from_status(r.status());
  if (!r->succeeded) return ec2_error("IncorrectState", "The security group changed meanwhile");
  return true;
}

Ec2Result<bool> Cloud::change_ingress(const std::string& group_id, const std::string& group_name,
                                      const std::vector<SecurityRule>& rules, bool authorize) {
  auto g = resolve_group(group_id, group_name);
  if (!g.ok()) return g.error();
  if (rules.empty())
    return ec2_error("MissingParameter", "IpPermissions (or IpProtocol and ports) are required");
  for (const SecurityRule& r : rules) {
    if (r.protocol != "tcp" && r.protocol != "udp" && r.protocol != "icmp" && r.protocol != "-1")
      return ec2_error(
          "InvalidParameterValue",
          fmt::format("Invalid value '{}' for IP protocol (tcp, udp, icmp or -1)", r.protocol));
    if (r.protocol == "tcp" || r.protocol == "udp") {
      if (r.from_port < 0 || r.from_port > 65535 || r.to_port < r.from_port || r.to_port > 65535)
        return ec2_error("InvalidParameterValue",
                         fmt::format("Invalid port range {}-{}", r.from_port, r.to_port));
      if (r.from_port == 0) return ec2_error("InvalidParameterValue", "port 0 cannot be forwarded");
      if (authorize && r.to_port - r.from_port + 1 > kMaxForwardedPorts)
        return ec2_error("InvalidParameterValue",
                         fmt::format("Nimbus forwards at most {} ports per rule from an "
                                     "instance's public address; {}-{} is wider",
                                     kMaxForwardedPorts, r.from_port, r.to_port));
    }
  }
  Ec2Error failure;
  bool failed = false;
  auto up = update(store_, group_key(g->id),
                   [&](const std::optional<KeyValue>& kv) -> Result<std::optional<std::string>> {
                     failed = false;
                     if (!kv) return Status::not_found("security group deleted");
                     auto cur = security_group_from_json(kv->value);
                     if (!cur.ok()) return cur.status();
                     for (const SecurityRule& r : rules) {
                       auto it = std::find(cur->ingress.begin(), cur->ingress.end(), r);
                       if (authorize && it != cur->ingress.end()) {
                         failed = true;
                         failure = ec2_error(
                             "InvalidPermission.Duplicate",
                             fmt::format("the specified rule \"peer: {}, {}, ports {}-{}, ALLOW\" "
                                         "already exists",
                                         r.cidrs.empty() ? "-" : r.cidrs[0], r.protocol,
                                         r.from_port, r.to_port));
                         return Status::conflict(failure.message);  // no write
                       }
                       if (!authorize && it == cur->ingress.end()) {
                         failed = true;
                         failure =
                             ec2_error("InvalidPermission.NotFound",
                                       "The specified rule does not exist in this security group.");
                         return Status::conflict(failure.message);  // no write
                       }
                       if (authorize) {
                         cur->ingress.push_back(r);
                       } else {
                         cur->ingress.erase(it);
                       }
                     }
                     return std::optional<std::string>(to_json(*cur).dump());
                   });
  if (failed) return failure;
  if (!up.ok()) {
    if (up.code() == Code::kNotFound)
      return ec2_error("InvalidGroup.NotFound", "The security group does not exist");
    return from_status(up.status());
  }
  kick();  // the reconciler applies the forwards to running instances
  return true;
}

std::vector<nlohmann::json> Cloud::forwards_for(const InstanceRecord& inst) {
  std::vector<nlohmann::json> out;
  if (inst.public_ip.empty()) return out;
  auto all = security_groups();
  if (!all.ok()) return out;
  std::set<std::pair<std::string, int>> seen;
  for (const auto& g : *all) {
    if (std::find(inst.security_groups.begin(), inst.security_groups.end(), g.id) ==
        inst.security_groups.end())
      continue;
    for (const auto& r : g.ingress) {
      if (r.protocol != "tcp" && r.protocol != "udp") continue;  // -1 and icmp: nothing to map
      for (int port = r.from_port; port <= r.to_port && port > 0; ++port) {
        if (!seen.insert({r.protocol, port}).second) continue;
        if (seen.size() > static_cast<size_t>(kMaxForwardedPorts) * 4) return out;
        out.push_back({{"protocol", r.protocol},
                       {"host_address", inst.public_ip},
                       {"host_port", port},
                       {"guest_port", port}});
      }
    }
  }
  return out;
}

}  // namespace nimbus::cloud
