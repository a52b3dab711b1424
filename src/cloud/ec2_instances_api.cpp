// The instance actions of the EC2 API: parse, call the Cloud, render EC2's XML.
#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <optional>

#include "cloud/base64.h"
#include "cloud/ec2_api.h"

namespace nimbus::cloud {

namespace {

std::string dashed(const std::string& ip) {
  std::string s = ip;
  std::replace(s.begin(), s.end(), '.', '-');
  return s;
}

bool shows_public_ip(const InstanceRecord& i) {
  return i.state == InstanceState::kPending || i.state == InstanceState::kRunning ||
         i.state == InstanceState::kStopping;
}

void render_state(XmlWriter& w, const char* tag, InstanceState s) {
  w.open(tag).number("code", state_code(s)).text("name", state_name(s)).close();
}

// EC2's InstanceMetadataOptionsResponse.
void render_metadata_options(XmlWriter& w, const char* tag, const InstanceRecord& i) {
  const InstanceMetadataOptions& o = i.metadata_options;
  w.open(tag)
      .text("state", i.metadata_options_applied ? "applied" : "pending")
      .text("httpTokens", o.http_tokens)
      .number("httpPutResponseHopLimit", o.http_put_response_hop_limit)
      .text("httpEndpoint", o.http_endpoint)
      .text("httpProtocolIpv6", "disabled")
      .text("instanceMetadataTags", o.instance_metadata_tags)
      .close();
}

// One of `allowed` or absent; InvalidParameterValue naming them otherwise.
Ec2Result<std::optional<std::string>> enum_param(const QueryParams& p, const std::string& name,
                                                 std::initializer_list<const char*> allowed) {
  auto v = p.get(name);
  if (!v) return std::optional<std::string>();
  for (const char* a : allowed) {
    if (*v == a) return v;
  }
  std::vector<std::string> names(allowed.begin(), allowed.end());
  return invalid_parameter_value(fmt::format("Invalid value '{}' for {}. Valid values: {}",
                                             quote_value_for_message(*v), name,
                                             fmt::join(names, ", ")));
}

// EC2's metadata options as RunInstances (prefix "MetadataOptions.") and
// ModifyInstanceMetadataOptions ("") take them: each optional, all checked before any is
// used. HttpProtocolIpv6 only "disabled": Nimbus serves IPv4 only.
Ec2Result<MetadataOptionsChange> parse_metadata_options(const QueryParams& p,
                                                        const std::string& prefix) {
  MetadataOptionsChange c;
  auto tokens = enum_param(p, prefix + "HttpTokens", {"optional", "required"});
  if (!tokens.ok()) return tokens.error();
  c.http_tokens = *tokens;
  auto endpoint = enum_param(p, prefix + "HttpEndpoint", {"enabled", "disabled"});
  if (!endpoint.ok()) return endpoint.error();
  c.http_endpoint = *endpoint;
  auto tags = enum_param(p, prefix + "InstanceMetadataTags", {"enabled", "disabled"});
  if (!tags.ok()) return tags.error();
  c.instance_metadata_tags = *tags;
  if (auto v6 = p.get(prefix + "HttpProtocolIpv6"); v6 && *v6 != "disabled") {
    if (*v6 == "enabled")
      return invalid_parameter_value(
          "HttpProtocolIpv6 'enabled' is not supported: Nimbus serves instance metadata on "
          "169.254.169.254 (IPv4) only");
    return invalid_parameter_value(
        fmt::format("Invalid value '{}' for {}HttpProtocolIpv6. Valid values: disabled",
                    quote_value_for_message(*v6), prefix));
  }
  if (auto v = p.get(prefix + "HttpPutResponseHopLimit")) {
    auto hops = p.get_int(prefix + "HttpPutResponseHopLimit", 1, 64);
    if (!hops.ok())
      return invalid_parameter_value(
          fmt::format("Invalid value '{}' for HttpPutResponseHopLimit: an integer from 1 to 64",
                      quote_value_for_message(*v)));
    c.hop_limit = static_cast<unsigned>(**hops);
  }
  return c;
}

void render_instance(XmlWriter& w, const InstanceRecord& i, Cloud& cloud,
                     const std::map<std::string, std::string>& group_names) {
  const std::string& region = cloud.options().region;
  w.open("item");
  w.text("instanceId", i.id).text("imageId", i.image_id);
  render_state(w, "instanceState", i.state);
  // A terminated instance's address is free for others (its record keeps it).
  const bool priv =
      !i.private_ip.empty() && !(i.state == InstanceState::kTerminated && !i.subnet_id.empty());
  w.text("privateDnsName",
         priv ? fmt::format("ip-{}.{}.compute.internal", dashed(i.private_ip), region) : "");
  const bool pub = shows_public_ip(i) && !i.public_ip.empty();
  w.text("dnsName",
         pub ? fmt::format("ec2-{}.{}.compute.nimbus", dashed(i.public_ip), region) : "");
  w.text("reason", i.reason);
  if (!i.key_name.empty()) w.text("keyName", i.key_name);
  w.number("amiLaunchIndex", i.launch_index);
  w.text("instanceType", i.instance_type).text("launchTime", i.launch_time);
  w.open("placement")
      .text("availabilityZone", i.zone)
      .text("groupName", i.placement_group)
      .text("tenancy", "default")
      .text("hostId", i.host)
      .close();
  w.open("monitoring").text("state", "disabled").close();
  if (priv) w.text("privateIpAddress", i.private_ip);
  if (pub) w.text("ipAddress", i.public_ip);
  if (!i.subnet_id.empty()) w.text("vpcId", i.vpc_id).text("subnetId", i.subnet_id);
  w.open("groupSet");
  for (const auto& g : i.security_groups) {
    auto it = group_names.find(g);
    w.open("item")
        .text("groupId", g)
        .text("groupName", it == group_names.end() ? "" : it->second)
        .close();
  }
  w.close();
  if (!i.state_reason_code.empty())
    w.open("stateReason")
        .text("code", i.state_reason_code)
        .text("message", i.state_reason_message)
        .close();
  w.text("architecture", "riscv64")
      .text("rootDeviceType", "ebs")
      .text("rootDeviceName", "/dev/vda");
  w.open("blockDeviceMapping")
      .open("item")
      .text("deviceName", "/dev/vda")
      .open("ebs")
      .text("volumeId", "vol-" + i.id.substr(2))
      .text("status", "attached")
      .text("attachTime", i.launch_time)
      .boolean("deleteOnTermination", true)
      .close()
      .close()
      .close();
  w.text("virtualizationType", "hvm").text("clientToken", i.client_token);
  render_tags(w, i.tags);
  w.text("hypervisor", "nimbus");
  w.open("cpuOptions").number("coreCount", i.vcpus).number("threadsPerCore", 1).close();
  render_metadata_options(w, "metadataOptions", i);
  w.close();
}

std::map<std::string, std::string> group_names(Cloud& cloud) {
  std::map<std::string, std::string> out;
  auto groups = cloud.security_groups();
  if (groups.ok()) {
    for (const auto& g : *groups) out[g.id] = g.name;
  }
  return out;
}

std::optional<std::vector<std::string>> instance_field(const InstanceRecord& i,
                                                       const std::string& name,
                                                       const std::string& region) {
  using V = std::vector<std::string>;
  if (name == "instance-id") return V{i.id};
  if (name == "instance-state-name") return V{std::string(state_name(i.state))};
  if (name == "instance-state-code") return V{std::to_string(state_code(i.state))};
  if (name == "instance-type") return V{i.instance_type};
  if (name == "availability-zone") return V{i.zone};
  if (name == "image-id") return V{i.image_id};
  if (name == "reservation-id") return V{i.reservation_id};
  if (name == "placement-group-name") return V{i.placement_group};
  if (name == "key-name") return V{i.key_name};
  if (name == "private-ip-address") return V{i.private_ip};
  if (name == "ip-address") return V{shows_public_ip(i) ? i.public_ip : ""};
  if (name == "architecture") return V{"riscv64"};
  if (name == "vpc-id") return V{i.vpc_id};
  if (name == "subnet-id") return V{i.subnet_id};
  if (name == "private-dns-name")
    return V{i.private_ip.empty()
                 ? ""
                 : fmt::format("ip-{}.{}.compute.internal", dashed(i.private_ip), region)};
  if (name == "host-id") return V{i.host};
  if (name == "instance.group-id" || name == "group-id") return i.security_groups;
  if (name == "client-token") return V{i.client_token};
  return tag_field(i.tags, name);
}

Ec2Result<std::vector<std::string>> instance_ids(const QueryParams& p, bool required) {
  auto ids = p.list("InstanceId");
  if (required && ids.empty()) return missing_parameter("InstanceId");
  if (ids.size() > 1000) return invalid_parameter_value("At most 1000 instance ids");
  for (const auto& id : ids) {
    if (!is_id(id, "i"))
      return ec2_error("InvalidInstanceID.Malformed",
                       fmt::format("Invalid id: \"{}\"", quote_value_for_message(id)));
  }
  return ids;
}

std::string render_changes(const Call& c, const char* root, const std::vector<StateChange>& v) {
  XmlWriter w(root);
  w.text("requestId", c.request_id).open("instancesSet");
  for (const auto& ch : v) {
    w.open("item").text("instanceId", ch.instance_id);
    render_state(w, "currentState", ch.current);
    render_state(w, "previousState", ch.previous);
    w.close();
  }
  return w.finish();
}

std::string boolean_reply(const Call& c) {
  XmlWriter w(c.action + "Response");
  w.text("requestId", c.request_id).boolean("return", true);
  return w.finish();
}

}  // namespace

void Ec2Api::add_instance_actions() {
  actions_["RunInstances"] = [this](const Call& c) -> Ec2Result<std::string> {
    const QueryParams& p = c.params;
    RunRequest r;
    auto min = p.get_int("MinCount", 1, 1000);
    if (!min.ok()) return bad_parameter(min.status());
    auto max = p.get_int("MaxCount", 1, 1000);
    if (!max.ok()) return bad_parameter(max.status());
    if (!*min) return missing_parameter("MinCount");
    if (!*max) return missing_parameter("MaxCount");
    r.min_count = static_cast<unsigned>(**min);
    r.max_count = static_cast<unsigned>(**max);
    if (r.min_count > r.max_count)
      return invalid_parameter_value("MinCount must be less than or equal to MaxCount");
    r.image_id = p.get_or("ImageId", "");
    if (r.image_id.empty()) return missing_parameter("ImageId");
    r.instance_type = p.get_or("InstanceType", "t3.micro");
    r.key_name = p.get_or("KeyName", "");
    r.user_data = p.get_or("UserData", "");
    r.client_token = p.get_or("ClientToken", "");
    r.zone = p.get_or("Placement.AvailabilityZone", "");
    r.placement_group = p.get_or("Placement.GroupName", "");
    r.security_group_ids = p.list("SecurityGroupId");
    r.security_group_names = p.list("SecurityGroup");
    r.subnet_id = p.get_or("SubnetId", "");
    r.private_ip = p.get_or("PrivateIpAddress", "");
    for (const QueryParams& ni : p.members("NetworkInterface")) {
      for (const auto& g : ni.list("SecurityGroupId")) r.security_group_ids.push_back(g);
      // The primary interface's subnet and address (one interface per instance here).
      if (r.subnet_id.empty()) r.subnet_id = ni.get_or("SubnetId", "");
      if (r.private_ip.empty()) r.private_ip = ni.get_or("PrivateIpAddress", "");
    }
    auto tags = parse_tag_specifications(p, "instance");
    if (!tags.ok()) return tags.error();
    r.instance_tags = *tags;
    for (const QueryParams& bdm : p.members("BlockDeviceMapping")) {
      auto size = bdm.get_int("Ebs.VolumeSize", 1, 16384);
      if (!size.ok()) return bad_parameter(size.status());
      if (*size) r.root_volume_gib = static_cast<uint64_t>(**size);
    }
    auto metadata = parse_metadata_options(p, "MetadataOptions.");
    if (!metadata.ok()) return metadata.error();
    if (metadata->http_tokens) r.metadata_options.http_tokens = *metadata->http_tokens;
    if (metadata->http_endpoint) r.metadata_options.http_endpoint = *metadata->http_endpoint;
    if (metadata->instance_metadata_tags)
      r.metadata_options.instance_metadata_tags = *metadata->instance_metadata_tags;
    if (metadata->hop_limit) r.metadata_options.http_put_response_hop_limit = *metadata->hop_limit;
    auto res = cloud_.run_instances(r);
    if (!res.ok()) return res.error();
    const auto names = group_names(cloud_);
    XmlWriter w("RunInstancesResponse");
    w.text("requestId", c.request_id)
        .text("reservationId", res->id)
        .text("ownerId", res->owner_id)
        .open("groupSet")
        .close()
        .open("instancesSet");
    for (const auto& i : res->instances) render_instance(w, i, cloud_, names);
    return w.finish();
  };

  actions_["DescribeInstances"] = [this](const Call& c) -> Ec2Result<std::string> {
    const QueryParams& p = c.params;
    auto ids = instance_ids(p, false);
    if (!ids.ok()) return ids.error();
    auto filters = parse_filters(p);
    if (!filters.ok()) return filters.error();
    auto max = p.get_int("MaxResults", 5, 1000);
    if (!max.ok()) return bad_parameter(max.status());
    if (*max && !ids->empty())
      return invalid_parameter_combination(
          "The parameter instancesSet cannot be used with the parameter maxResults");
    const std::string token = p.get_or("NextToken", "");
    Ec2Result<std::vector<InstanceRecord>> all = std::vector<InstanceRecord>{};
    if (!ids->empty() && ids->size() <= 100) {
      // By key: waiters ask for a few ids every few seconds, and reading every record for
      // them costs as much as listing them all (bench/RESULTS.md, 2026-12-07).
      std::vector<std::string> wanted = *ids;
      std::sort(wanted.begin(), wanted.end());
      wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
      for (const auto& id : wanted) {
        auto i = cloud_.instance(id);
        if (i.ok()) {
          all->push_back(std::move(*i));
        } else if (i.error().code != "InvalidInstanceID.NotFound") {
          return i.error();
        }
      }
    } else {
      all = cloud_.instances();
      if (!all.ok()) return all.error();
    }
    std::vector<const InstanceRecord*> chosen;
    std::vector<std::string> missing = *ids;  // an id may be given twice: it is one instance
    std::sort(missing.begin(), missing.end());
    missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
    std::string unknown;
    for (const auto& i : *all) {
      if (!ids->empty()) {
        auto it = std::lower_bound(missing.begin(), missing.end(), i.id);
        if (it == missing.end() || *it != i.id) continue;  // not asked for
        missing.erase(it);
      }
      if (!matches_all(
              *filters,
              [&](const std::string& n) { return instance_field(i, n, cloud_.options().region); },
              &unknown)) {
        if (!unknown.empty())
          return invalid_parameter_value(
              fmt::format("The filter '{}' is invalid", quote_value_for_message(unknown)));
        continue;
      }
      chosen.push_back(&i);
    }
    if (!missing.empty()) {
      return ec2_error(
          "InvalidInstanceID.NotFound",
          fmt::format("The instance ID{} '{}' do{} not exist", missing.size() > 1 ? "s" : "",
                      fmt::join(missing, ", "), missing.size() > 1 ? "" : "es"));
    }
    // Reservations in id order; a page ends after MaxResults instances (whole reservations).
    std::map<std::string, std::vector<const InstanceRecord*>> by_res;
    for (const auto* i : chosen) by_res[i->reservation_id].push_back(i);
    const auto names = group_names(cloud_);
    XmlWriter w("DescribeInstancesResponse");
    w.text("requestId", c.request_id).open("reservationSet");
    size_t count = 0;
    std::string next;
    for (auto it = token.empty() ? by_res.begin() : by_res.upper_bound(token); it != by_res.end();
         ++it) {
      if (*max && count >= static_cast<size_t>(**max)) {
        next = std::prev(it)->first;
        break;
      }
      auto& insts = it->second;
      std::sort(insts.begin(), insts.end(),
                [](const auto* a, const auto* b) { return a->launch_index < b->launch_index; });
      w.open("item").text("reservationId", it->first).text("ownerId", insts[0]->owner_id);
      w.open("groupSet").close().open("instancesSet");
      for (const auto* i : insts) render_instance(w, *i, cloud_, names);
      w.close().close();
      count += insts.size();
    }
    w.close();
    if (!next.empty()) w.text("nextToken", next);
    return w.finish();
  };

  actions_["DescribeInstanceStatus"] = [this](const Call& c) -> Ec2Result<std::string> {
    const QueryParams& p = c.params;
    auto ids = instance_ids(p, false);
    if (!ids.ok()) return ids.error();
    auto filters = parse_filters(p);
    if (!filters.ok()) return filters.error();
    auto include_all = p.get_bool("IncludeAllInstances");
    if (!include_all.ok()) return bad_parameter(include_all.status());
    auto all = cloud_.instances();
    if (!all.ok()) return all.error();
    XmlWriter w("DescribeInstanceStatusResponse");
    w.text("requestId", c.request_id).open("instanceStatusSet");
    std::vector<std::string> missing = *ids;
    for (const auto& i : *all) {
      if (!ids->empty() && std::find(ids->begin(), ids->end(), i.id) == ids->end()) continue;
      missing.erase(std::remove(missing.begin(), missing.end(), i.id), missing.end());
      if (!include_all->value_or(false) && i.state != InstanceState::kRunning) continue;
      const bool alive = cloud_.host_alive(i.host);
      std::string status = "not-applicable", detail = "";
      if (i.state == InstanceState::kRunning || i.state == InstanceState::kPending) {
        if (!alive) {
          status = "impaired";
          detail = "failed";
        } else if (i.state == InstanceState::kRunning) {
          status = "ok";
          detail = "passed";
        } else {
          status = "initializing";
          detail = "initializing";
        }
      }
      std::string unknown;
      auto field = [&](const std::string& n) -> std::optional<std::vector<std::string>> {
        if (n == "instance-status.status" || n == "system-status.status")
          return std::vector<std::string>{status};
        if (n == "instance-status.reachability" || n == "system-status.reachability")
          return std::vector<std::string>{detail};
        return instance_field(i, n, cloud_.options().region);
      };
      if (!matches_all(*filters, field, &unknown)) {
        if (!unknown.empty())
          return invalid_parameter_value(
              fmt::format("The filter '{}' is invalid", quote_value_for_message(unknown)));
        continue;
      }
      w.open("item").text("instanceId", i.id).text("availabilityZone", i.zone);
      render_state(w, "instanceState", i.state);
      for (const char* kind : {"systemStatus", "instanceStatus"}) {
        w.open(kind).text("status", status).open("details");
        if (!detail.empty())
          w.open("item").text("name", "reachability").text("status", detail).close();
        w.close().close();
      }
      w.open("eventsSet").close();
      w.close();
    }
    if (!missing.empty())
      return ec2_error("InvalidInstanceID.NotFound",
                       fmt::format("The instance ID '{}' does not exist", missing[0]));
    return w.finish();
  };

  actions_["StartInstances"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto ids = instance_ids(c.params, true);
    if (!ids.ok()) return ids.error();
    auto r = cloud_.start_instances(*ids);
    if (!r.ok()) return r.error();
    return render_changes(c, "StartInstancesResponse", *r);
  };
  actions_["StopInstances"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto ids = instance_ids(c.params, true);
    if (!ids.ok()) return ids.error();
    auto force = c.params.get_bool("Force");
    if (!force.ok()) return bad_parameter(force.status());
    auto r = cloud_.stop_instances(*ids, force->value_or(false));
    if (!r.ok()) return r.error();
    return render_changes(c, "StopInstancesResponse", *r);
  };
  actions_["TerminateInstances"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto ids = instance_ids(c.params, true);
    if (!ids.ok()) return ids.error();
    auto r = cloud_.terminate_instances(*ids);
    if (!r.ok()) return r.error();
    return render_changes(c, "TerminateInstancesResponse", *r);
  };
  actions_["RebootInstances"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto ids = instance_ids(c.params, true);
    if (!ids.ok()) return ids.error();
    auto r = cloud_.reboot_instances(*ids);
    if (!r.ok()) return r.error();
    return boolean_reply(c);
  };
  actions_["ModifyInstanceAttribute"] = [this](const Call& c) -> Ec2Result<std::string> {
    const QueryParams& p = c.params;
    const std::string id = p.get_or("InstanceId", "");
    if (id.empty()) return missing_parameter("InstanceId");
    std::string type = p.get_or("InstanceType.Value", "");
    if (type.empty() && p.get_or("Attribute", "") == "instanceType") type = p.get_or("Value", "");
    if (type.empty())
      return ec2_error("InvalidParameterCombination",
                       "Nimbus changes only the instance type (InstanceType.Value, or "
                       "Attribute=instanceType with Value)");
    auto r = cloud_.modify_instance_type(id, type);
    if (!r.ok()) return r.error();
    return boolean_reply(c);
  };
  actions_["ModifyInstanceMetadataOptions"] = [this](const Call& c) -> Ec2Result<std::string> {
    const QueryParams& p = c.params;
    const std::string id = p.get_or("InstanceId", "");
    if (id.empty()) return missing_parameter("InstanceId");
    auto change = parse_metadata_options(p, "");
    if (!change.ok()) return change.error();
    const bool v6 = p.has("HttpProtocolIpv6");  // only "disabled", which it is already
    if (!change->http_tokens && !change->http_endpoint && !change->instance_metadata_tags &&
        !change->hop_limit && !v6)
      return invalid_parameter_combination(
          "Specify at least one of HttpTokens, HttpPutResponseHopLimit, HttpEndpoint, "
          "HttpProtocolIpv6 or InstanceMetadataTags");
    auto dry = p.get_bool("DryRun");
    if (!dry.ok()) return bad_parameter(dry.status());
    if (dry->value_or(false)) {
      auto i = cloud_.instance(id);
      if (!i.ok()) return i.error();
      return ec2_error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.",
                       412);
    }
    auto r = cloud_.modify_instance_metadata_options(id, *change);
    if (!r.ok()) return r.error();
    XmlWriter w("ModifyInstanceMetadataOptionsResponse");
    w.text("requestId", c.request_id).text("instanceId", r->id);
    render_metadata_options(w, "instanceMetadataOptions", *r);
    return w.finish();
  };
  actions_["GetConsoleOutput"] = [this](const Call& c) -> Ec2Result<std::string> {
    const std::string id = c.params.get_or("InstanceId", "");
    if (id.empty()) return missing_parameter("InstanceId");
    auto i = cloud_.instance(id);
    if (!i.ok()) return i.error();
    std::string output;
    auto host = cloud_.store().get(kHostsPrefix + i->host);
    if (host.ok() && *host && i->state != InstanceState::kTerminated) {
      auto rec = host_from_json((*host)->value);
      if (rec.ok()) {
        auto r =
            driver_.call(*rec, "GET", "/v1/vms/" + id + "/console-output", std::nullopt, 10000);
        if (r.ok() && r->contains("output") && (*r)["output"].is_string())
          output = (*r)["output"].get<std::string>();
      }
    }
    XmlWriter w("GetConsoleOutputResponse");
    w.text("requestId", c.request_id).text("instanceId", id).text("timestamp", iso_time_now());
    w.text("output", base64_encode(output));
    return w.finish();
  };
}

}  // namespace nimbus::cloud
