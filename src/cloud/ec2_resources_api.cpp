// The EC2 API's actions on everything but instances: regions, zones, images, instance
// types, tags, security groups, placement groups.
#include <fmt/format.h>

#include <algorithm>

#include "cloud/custom_images.h"
#include "cloud/ec2_api.h"

namespace nimbus::cloud {

namespace {

bool wanted(const std::vector<std::string>& list, const std::string& v) {
  return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
}

Ec2Error unknown_filter(const std::string& name) {
  return invalid_parameter_value(
      fmt::format("The filter '{}' is invalid", quote_value_for_message(name)));
}

// SecurityRule list from IpPermissions.N.* (or the old top-level IpProtocol/FromPort/...).
Ec2Result<std::vector<SecurityRule>> parse_rules(const QueryParams& p) {
  std::vector<SecurityRule> out;
  auto one = [](const QueryParams& q) -> Ec2Result<SecurityRule> {
    SecurityRule r;
    r.protocol = q.get_or("IpProtocol", "");
    if (r.protocol.empty()) return missing_parameter("IpProtocol");
    std::transform(r.protocol.begin(), r.protocol.end(), r.protocol.begin(), ::tolower);
    if (r.protocol == "6") r.protocol = "tcp";
    if (r.protocol == "17") r.protocol = "udp";
    if (r.protocol == "1") r.protocol = "icmp";
    auto from = q.get_int("FromPort", -1, 65535);
    if (!from.ok()) return bad_parameter(from.status());
    auto to = q.get_int("ToPort", -1, 65535);
    if (!to.ok()) return bad_parameter(to.status());
    r.from_port = static_cast<int>(from->value_or(-1));
    r.to_port = static_cast<int>(to->value_or(r.from_port));
    for (const QueryParams& range : q.members("IpRanges")) {
      if (auto cidr = range.get("CidrIp")) r.cidrs.push_back(*cidr);
    }
    for (const QueryParams& pair : q.members("Groups")) {
      if (auto g = pair.get("GroupId")) r.source_groups.push_back(*g);
    }
    if (auto cidr = q.get("CidrIp")) r.cidrs.push_back(*cidr);
    std::sort(r.cidrs.begin(), r.cidrs.end());
    std::sort(r.source_groups.begin(), r.source_groups.end());
    return r;
  };
  for (const QueryParams& perm : p.members("IpPermissions")) {
    auto r = one(perm);
    if (!r.ok()) return r.error();
    out.push_back(*r);
  }
  if (out.empty() && p.has("IpProtocol")) {
    auto r = one(p);
    if (!r.ok()) return r.error();
    out.push_back(*r);
  }
  if (out.size() > 100) return invalid_parameter_value("At most 100 rules per request");
  return out;
}

void render_group(XmlWriter& w, const SecurityGroup& g) {
  w.open("item")
      .text("ownerId", g.owner_id)
      .text("groupId", g.id)
      .text("groupName", g.name)
      .text("groupDescription", g.description)
      .text("vpcId", g.vpc_id);
  w.open("ipPermissions");
  for (const auto& r : g.ingress) {
    w.open("item").text("ipProtocol", r.protocol);
    if (r.from_port >= 0) w.number("fromPort", r.from_port);
    if (r.to_port >= 0) w.number("toPort", r.to_port);
    w.open("groups");
    for (const auto& s : r.source_groups) w.open("item").text("groupId", s).close();
    w.close().open("ipRanges");
    for (const auto& c : r.cidrs) w.open("item").text("cidrIp", c).close();
    w.close().open("ipv6Ranges").close().open("prefixListIds").close();
    w.close();
  }
  w.close();
  w.open("ipPermissionsEgress")
      .open("item")
      .text("ipProtocol", "-1")
      .open("groups")
      .close()
      .open("ipRanges")
      .open("item")
      .text("cidrIp", "0.0.0.0/0")
      .close()
      .close()
      .close()
      .close();
  render_tags(w, g.tags);
  w.close();
}

}  // namespace

void Ec2Api::add_resource_actions() {
  actions_["DescribeRegions"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto names = c.params.list("RegionName");
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    // AllRegions also lists opt-in regions not opted into: every Nimbus region is
    // opt-in-not-required, so it changes nothing (but must be a boolean).
    if (auto all = c.params.get_bool("AllRegions"); !all.ok()) return bad_parameter(all.status());
    const auto& o = cloud_.options();
    const std::vector<RegionEndpoint> regions =
        o.regions.empty() ? std::vector<RegionEndpoint>{{o.region, o.endpoint_url}} : o.regions;
    for (const auto& n : names) {
      if (std::none_of(regions.begin(), regions.end(),
                       [&](const RegionEndpoint& r) { return r.name == n; }))
        return ec2_error("InvalidParameterValue",
                         fmt::format("Invalid region: {}", quote_value_for_message(n)));
    }
    XmlWriter w("DescribeRegionsResponse");
    w.text("requestId", c.request_id).open("regionInfo");
    for (const RegionEndpoint& r : regions) {
      std::string unknown;
      auto field = [&](const std::string& n) -> std::optional<std::vector<std::string>> {
        if (n == "region-name") return std::vector<std::string>{r.name};
        if (n == "endpoint") return std::vector<std::string>{r.endpoint};
        if (n == "opt-in-status") return std::vector<std::string>{"opt-in-not-required"};
        return std::nullopt;
      };
      if (!matches_all(*filters, field, &unknown)) {
        if (!unknown.empty()) return unknown_filter(unknown);
        continue;
      }
      if (!wanted(names, r.name)) continue;
      w.open("item")
          .text("regionName", r.name)
          .text("regionEndpoint", r.endpoint)
          .text("optInStatus", "opt-in-not-required")
          .close();
    }
    return w.finish();
  };

  actions_["DescribeAvailabilityZones"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto names = c.params.list("ZoneName");
    const auto ids = c.params.list("ZoneId");
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    const auto& o = cloud_.options();
    for (const auto& n : names) {
      if (std::find(o.zones.begin(), o.zones.end(), n) == o.zones.end())
        return invalid_parameter_value(
            fmt::format("The zone '{}' does not exist", quote_value_for_message(n)));
    }
    XmlWriter w("DescribeAvailabilityZonesResponse");
    w.text("requestId", c.request_id).open("availabilityZoneInfo");
    for (size_t n = 0; n < o.zones.size(); ++n) {
      const std::string& z = o.zones[n];
      const std::string zone_id = fmt::format("{}-az{}", o.region, n + 1);
      std::string unknown;
      auto field = [&](const std::string& f) -> std::optional<std::vector<std::string>> {
        if (f == "zone-name") return std::vector<std::string>{z};
        if (f == "zone-id") return std::vector<std::string>{zone_id};
        if (f == "region-name") return std::vector<std::string>{o.region};
        if (f == "state") return std::vector<std::string>{"available"};
        if (f == "zone-type") return std::vector<std::string>{"availability-zone"};
        return std::nullopt;
      };
      if (!wanted(names, z) || !wanted(ids, zone_id)) continue;
      if (!matches_all(*filters, field, &unknown)) {
        if (!unknown.empty()) return unknown_filter(unknown);
        continue;
      }
      w.open("item")
          .text("zoneName", z)
          .text("zoneId", zone_id)
          .text("zoneState", "available")
          .text("regionName", o.region)
          .text("zoneType", "availability-zone")
          .text("optInStatus", "opt-in-not-required")
          .text("groupName", o.region)
          .text("networkBorderGroup", o.region)
          .open("messageSet")
          .close()
          .close();
    }
    return w.finish();
  };

  actions_["CreateImage"] = [this](const Call& c) -> Ec2Result<std::string> {
    CreateImageRequest r;
    r.instance_id = c.params.get_or("InstanceId", "");
    r.name = c.params.get_or("Name", "");
    r.description = c.params.get_or("Description", "");
    auto no_reboot = c.params.get_bool("NoReboot");
    if (!no_reboot.ok()) return bad_parameter(no_reboot.status());
    r.no_reboot = no_reboot->value_or(false);
    auto tags = parse_tag_specifications(c.params, "image");
    if (!tags.ok()) return tags.error();
    r.tags = *tags;
    auto img = create_image(cloud_, r);
    if (!img.ok()) return img.error();
    XmlWriter w("CreateImageResponse");
    w.text("requestId", c.request_id).text("imageId", img->id);
    return w.finish();
  };

  actions_["DeregisterImage"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto r = deregister_image(cloud_, c.params.get_or("ImageId", ""));
    if (!r.ok()) return r.error();
    XmlWriter w("DeregisterImageResponse");
    w.text("requestId", c.request_id).boolean("return", true);
    return w.finish();
  };

  actions_["DescribeImages"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto ids = c.params.list("ImageId");
    const auto owners = c.params.list("Owner");
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    auto all = cloud_.images();
    if (!all.ok()) return all.error();
    for (const auto& id : ids) {
      if (!is_id(id, "ami"))
        return ec2_error("InvalidAMIID.Malformed",
                         fmt::format("Invalid id: \"{}\"", quote_value_for_message(id)));
      if (std::none_of(all->begin(), all->end(), [&](const auto& i) { return i.id == id; }))
        return ec2_error("InvalidAMIID.NotFound",
                         fmt::format("The image id '[{}]' does not exist", id));
    }
    XmlWriter w("DescribeImagesResponse");
    w.text("requestId", c.request_id).open("imagesSet");
    const std::string& account = cloud_.options().account_id;
    for (const auto& img : *all) {
      if (!wanted(ids, img.id)) continue;
      // Owner: "self" is the caller's own images (CreateImage), "amazon"/"nimbus" the
      // cloud's public ones, an account id the images it owns.
      if (!owners.empty() && !(wanted(owners, "self") && !img.is_public) &&
          !((wanted(owners, "amazon") || wanted(owners, "nimbus")) && img.is_public) &&
          !wanted(owners, img.owner_id))
        continue;
      std::string unknown;
      auto field = [&](const std::string& f) -> std::optional<std::vector<std::string>> {
        if (f == "image-id") return std::vector<std::string>{img.id};
        if (f == "name") return std::vector<std::string>{img.name};
        if (f == "state") return std::vector<std::string>{img.state};
        if (f == "architecture") return std::vector<std::string>{img.architecture};
        if (f == "owner-id") return std::vector<std::string>{img.owner_id};
        if (f == "is-public") return std::vector<std::string>{img.is_public ? "true" : "false"};
        if (f == "description") return std::vector<std::string>{img.description};
        if (f == "image-type") return std::vector<std::string>{"machine"};
        if (f == "root-device-name") return std::vector<std::string>{"/dev/vda"};
        return tag_field(img.tags, f);
      };
      if (!matches_all(*filters, field, &unknown)) {
        if (!unknown.empty()) return unknown_filter(unknown);
        continue;
      }
      w.open("item")
          .text("imageId", img.id)
          .text("imageLocation", (img.is_public ? std::string("nimbus") : account) + "/" + img.name)
          .text("imageState", img.state)
          .text("imageOwnerId", img.owner_id)
          .text("creationDate", img.creation_date)
          .boolean("isPublic", img.is_public)
          .text("architecture", img.architecture)
          .text("imageType", "machine")
          .text("name", img.name)
          .text("description", img.description)
          .text("rootDeviceType", "ebs")
          .text("rootDeviceName", "/dev/vda")
          .open("blockDeviceMapping")
          .open("item")
          .text("deviceName", "/dev/vda")
          .open("ebs")
          .number("volumeSize", static_cast<int64_t>((img.disk_mib + 1023) / 1024))
          .boolean("deleteOnTermination", true)
          .text("volumeType", "standard")
          .close()
          .close()
          .close()
          .text("virtualizationType", "hvm")
          .text("hypervisor", "nimbus");
      if (!img.state_reason_code.empty()) {
        w.open("stateReason")
            .text("code", img.state_reason_code)
            .text("message", img.state_reason_message)
            .close();
      }
      render_tags(w, img.tags);
      w.close();
    }
    return w.finish();
  };

  actions_["DescribeInstanceTypes"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto names = c.params.list("InstanceType");
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    for (const auto& n : names) {
      if (!find_type(cloud_.instance_types(), n))
        return invalid_parameter_value(
            fmt::format("The following supplied instance types do "
                        "not exist: [{}]",
                        quote_value_for_message(n)));
    }
    XmlWriter w("DescribeInstanceTypesResponse");
    w.text("requestId", c.request_id).open("instanceTypeSet");
    for (const auto& t : cloud_.instance_types()) {
      if (!wanted(names, t.name)) continue;
      std::string unknown;
      auto field = [&](const std::string& f) -> std::optional<std::vector<std::string>> {
        if (f == "instance-type") return std::vector<std::string>{t.name};
        if (f == "vcpu-info.default-vcpus")
          return std::vector<std::string>{std::to_string(t.vcpus)};
        if (f == "memory-info.size-in-mib")
          return std::vector<std::string>{std::to_string(t.memory_mib)};
        if (f == "processor-info.supported-architecture")
          return std::vector<std::string>{"riscv64"};
        if (f == "current-generation") return std::vector<std::string>{"true"};
        return std::nullopt;
      };
      if (!matches_all(*filters, field, &unknown)) {
        if (!unknown.empty()) return unknown_filter(unknown);
        continue;
      }
      w.open("item")
          .text("instanceType", t.name)
          .boolean("currentGeneration", true)
          .boolean("freeTierEligible", false)
          .open("supportedUsageClasses")
          .text("item", "on-demand")
          .close()
          .open("supportedRootDeviceTypes")
          .text("item", "ebs")
          .close()
          .open("supportedVirtualizationTypes")
          .text("item", "hvm")
          .close()
          .boolean("bareMetal", false)
          .text("hypervisor", "nimbus")
          .open("processorInfo")
          .open("supportedArchitectures")
          .text("item", "riscv64")
          .close()
          .close()
          .open("vCpuInfo")
          .number("defaultVCpus", t.vcpus)
          .number("defaultCores", t.vcpus)
          .number("defaultThreadsPerCore", 1)
          .close()
          .open("memoryInfo")
          .number("sizeInMiB", static_cast<int64_t>(t.memory_mib))
          .close()
          .boolean("instanceStorageSupported", false)
          .open("placementGroupInfo")
          .open("supportedStrategies")
          .text("item", "cluster")
          .text("item", "partition")
          .text("item", "spread")
          .close()
          .close()
          .close();
    }
    return w.finish();
  };

  actions_["CreateTags"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto r = cloud_.create_tags(c.params.list("ResourceId"), parse_tag_list(c.params, "Tag"));
    if (!r.ok()) return r.error();
    XmlWriter w("CreateTagsResponse");
    w.text("requestId", c.request_id).boolean("return", true);
    return w.finish();
  };
  actions_["DeleteTags"] = [this](const Call& c) -> Ec2Result<std::string> {
    std::vector<std::pair<std::string, std::optional<std::string>>> tags;
    for (const QueryParams& t : c.params.members("Tag")) {
      if (auto k = t.get("Key")) tags.push_back({*k, t.get("Value")});
    }
    auto r = cloud_.delete_tags(c.params.list("ResourceId"), tags);
    if (!r.ok()) return r.error();
    XmlWriter w("DeleteTagsResponse");
    w.text("requestId", c.request_id).boolean("return", true);
    return w.finish();
  };
  actions_["DescribeTags"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    struct Row {
      std::string id, type;
      Tags tags;
    };
    std::vector<Row> rows;
    auto insts = cloud_.instances();
    if (!insts.ok()) return insts.error();
    for (const auto& i : *insts) rows.push_back({i.id, "instance", i.tags});
    auto groups = cloud_.security_groups();
    if (!groups.ok()) return groups.error();
    for (const auto& g : *groups) rows.push_back({g.id, "security-group", g.tags});
    auto images = cloud_.images();
    if (!images.ok()) return images.error();
    for (const auto& i : *images) rows.push_back({i.id, "image", i.tags});
    XmlWriter w("DescribeTagsResponse");
    w.text("requestId", c.request_id).open("tagSet");
    for (const Row& r : rows) {
      for (const auto& [k, v] : r.tags) {
        std::string unknown;
        auto field = [&](const std::string& f) -> std::optional<std::vector<std::string>> {
          if (f == "resource-id") return std::vector<std::string>{r.id};
          if (f == "resource-type") return std::vector<std::string>{r.type};
          if (f == "key") return std::vector<std::string>{k};
          if (f == "value") return std::vector<std::string>{v};
          if (f.rfind("tag:", 0) == 0)
            return f.substr(4) == k ? std::vector<std::string>{v} : std::vector<std::string>{};
          return std::nullopt;
        };
        if (!matches_all(*filters, field, &unknown)) {
          if (!unknown.empty()) return unknown_filter(unknown);
          continue;
        }
        w.open("item")
            .text("resourceId", r.id)
            .text("resourceType", r.type)
            .text("key", k)
            .text("value", v)
            .close();
      }
    }
    return w.finish();
  };

  actions_["CreateSecurityGroup"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto tags = parse_tag_specifications(c.params, "security-group");
    if (!tags.ok()) return tags.error();
    auto g = cloud_.create_security_group(c.params.get_or("GroupName", ""),
                                          c.params.get_or("GroupDescription", ""), *tags);
    if (!g.ok()) return g.error();
    XmlWriter w("CreateSecurityGroupResponse");
    w.text("requestId", c.request_id).boolean("return", true).text("groupId", g->id);
    render_tags(w, g->tags);
    return w.finish();
  };
  actions_["DeleteSecurityGroup"] = [this](const Call& c) -> Ec2Result<std::string> {
    const std::string id = c.params.get_or("GroupId", ""), name = c.params.get_or("GroupName", "");
    if (id.empty() && name.empty()) return missing_parameter("GroupId");
    auto r = cloud_.delete_security_group(id, name);
    if (!r.ok()) return r.error();
    XmlWriter w("DeleteSecurityGroupResponse");
    w.text("requestId", c.request_id).boolean("return", true);
    return w.finish();
  };
  actions_["DescribeSecurityGroups"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto ids = c.params.list("GroupId");
    const auto names = c.params.list("GroupName");
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    auto all = cloud_.security_groups();
    if (!all.ok()) return all.error();
    for (const auto& id : ids) {
      if (std::none_of(all->begin(), all->end(), [&](const auto& g) { return g.id == id; }))
        return ec2_error(
            "InvalidGroup.NotFound",
            fmt::format("The security group '{}' does not exist", quote_value_for_message(id)));
    }
    for (const auto& n : names) {
      if (std::none_of(all->begin(), all->end(), [&](const auto& g) { return g.name == n; }))
        return ec2_error(
            "InvalidGroup.NotFound",
            fmt::format("The security group '{}' does not exist", quote_value_for_message(n)));
    }
    XmlWriter w("DescribeSecurityGroupsResponse");
    w.text("requestId", c.request_id).open("securityGroupInfo");
    for (const auto& g : *all) {
      if (!wanted(ids, g.id) || !wanted(names, g.name)) continue;
      std::string unknown;
      auto field = [&](const std::string& f) -> std::optional<std::vector<std::string>> {
        if (f == "group-id") return std::vector<std::string>{g.id};
        if (f == "group-name") return std::vector<std::string>{g.name};
        if (f == "description") return std::vector<std::string>{g.description};
        if (f == "vpc-id") return std::vector<std::string>{g.vpc_id};
        if (f == "owner-id") return std::vector<std::string>{g.owner_id};
        return tag_field(g.tags, f);
      };
      if (!matches_all(*filters, field, &unknown)) {
        if (!unknown.empty()) return unknown_filter(unknown);
        continue;
      }
      render_group(w, g);
    }
    return w.finish();
  };
  for (bool authorize : {true, false}) {
    const std::string action =
        authorize ? "AuthorizeSecurityGroupIngress" : "RevokeSecurityGroupIngress";
    actions_[action] = [this, authorize, action](const Call& c) -> Ec2Result<std::string> {
      const std::string id = c.params.get_or("GroupId", "");
      const std::string name = c.params.get_or("GroupName", "");
      if (id.empty() && name.empty()) return missing_parameter("GroupId");
      auto rules = parse_rules(c.params);
      if (!rules.ok()) return rules.error();
      auto r = cloud_.change_ingress(id, name, *rules, authorize);
      if (!r.ok()) return r.error();
      XmlWriter w(action + "Response");
      w.text("requestId", c.request_id).boolean("return", true);
      return w.finish();
    };
  }

  actions_["CreatePlacementGroup"] = [this](const Call& c) -> Ec2Result<std::string> {
    auto count = c.params.get_int("PartitionCount", 1, 7);
    if (!count.ok()) return bad_parameter(count.status());
    auto tags = parse_tag_specifications(c.params, "placement-group");
    if (!tags.ok()) return tags.error();
    auto g = cloud_.create_placement_group(c.params.get_or("GroupName", ""),
                                           c.params.get_or("Strategy", ""),
                                           static_cast<unsigned>(count->value_or(0)), *tags);
    if (!g.ok()) return g.error();
    XmlWriter w("CreatePlacementGroupResponse");
    w.text("requestId", c.request_id).boolean("return", true);
    w.open("placementGroup")
        .text("groupName", g->name)
        .text("state", g->state)
        .text("strategy", g->strategy)
        .text("groupId", g->id);
    if (g->partition_count) w.number("partitionCount", g->partition_count);
    render_tags(w, g->tags);
    w.close();
    return w.finish();
  };
  actions_["DeletePlacementGroup"] = [this](const Call& c) -> Ec2Result<std::string> {
    const std::string name = c.params.get_or("GroupName", "");
    if (name.empty()) return missing_parameter("GroupName");
    auto r = cloud_.delete_placement_group(name);
    if (!r.ok()) return r.error();
    XmlWriter w("DeletePlacementGroupResponse");
    w.text("requestId", c.request_id).boolean("return", true);
    return w.finish();
  };
  actions_["DescribePlacementGroups"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto names = c.params.list("GroupName");
    const auto ids = c.params.list("GroupId");
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    auto all = cloud_.placement_groups();
    if (!all.ok()) return all.error();
    for (const auto& n : names) {
      if (std::none_of(all->begin(), all->end(), [&](const auto& g) { return g.name == n; }))
        return ec2_error(
            "InvalidPlacementGroup.Unknown",
            fmt::format("The Placement Group '{}' is unknown", quote_value_for_message(n)));
    }
    XmlWriter w("DescribePlacementGroupsResponse");
    w.text("requestId", c.request_id).open("placementGroupSet");
    for (const auto& g : *all) {
      if (!wanted(names, g.name) || !wanted(ids, g.id)) continue;
      std::string unknown;
      auto field = [&](const std::string& f) -> std::optional<std::vector<std::string>> {
        if (f == "group-name") return std::vector<std::string>{g.name};
        if (f == "group-id") return std::vector<std::string>{g.id};
        if (f == "strategy") return std::vector<std::string>{g.strategy};
        if (f == "state") return std::vector<std::string>{g.state};
        return tag_field(g.tags, f);
      };
      if (!matches_all(*filters, field, &unknown)) {
        if (!unknown.empty()) return unknown_filter(unknown);
        continue;
      }
      w.open("item")
          .text("groupName", g.name)
          .text("state", g.state)
          .text("strategy", g.strategy)
          .text("groupId", g.id);
      if (g.partition_count) w.number("partitionCount", g.partition_count);
      render_tags(w, g.tags);
      w.close();
    }
    return w.finish();
  };
}

}  // namespace nimbus::cloud
