// The EC2 API's network actions: DescribeVpcs and DescribeSubnets (docs/cloud.md,
// "Networks"), in the shapes of botocore's service-2.json (Vpc, Subnet).
#include <fmt/format.h>

#include <algorithm>

#include "cloud/ec2_api.h"

namespace nimbus::cloud {

namespace {

using Values = std::optional<std::vector<std::string>>;

std::string boolean_text(bool b) { return b ? "true" : "false"; }

// Every filter names a field `lookup` knows (checked on an example resource, so that an
// unknown filter is refused even when nothing is listed).
std::optional<Ec2Error> check_filter_names(
    const std::vector<Filter>& filters, const std::function<Values(const std::string&)>& lookup) {
  for (const auto& f : filters) {
    if (!lookup(f.name))
      return invalid_parameter_value(
          fmt::format("The filter '{}' is invalid", quote_value_for_message(f.name)));
  }
  return std::nullopt;
}

// Ids asked for that are not there: EC2's NotFound naming them.
std::optional<Ec2Error> missing_ids(const std::vector<std::string>& asked,
                                    const std::vector<std::string>& found, const char* code,
                                    const char* kind) {
  std::vector<std::string> missing;
  for (const auto& id : asked) {
    if (std::find(found.begin(), found.end(), id) == found.end() &&
        std::find(missing.begin(), missing.end(), id) == missing.end())
      missing.push_back(quote_value_for_message(id));
  }
  if (missing.empty()) return std::nullopt;
  return ec2_error(code,
                   fmt::format("The {} ID{} {} do{} not exist", kind, missing.size() > 1 ? "s" : "",
                               fmt::join(missing, ", "), missing.size() > 1 ? "" : "es"));
}

Values vpc_field(const VpcRecord& v, const std::string& name) {
  using V = std::vector<std::string>;
  if (name == "vpc-id") return V{v.id};
  if (name == "is-default" || name == "isDefault") return V{boolean_text(v.is_default)};
  if (name == "cidr" || name == "cidr-block" || name == "cidrBlock" ||
      name == "cidr-block-association.cidr-block")
    return V{v.cidr_block};
  if (name == "state") return V{v.state};
  if (name == "owner-id") return V{v.owner_id};
  if (name == "dhcp-options-id") return V{"default"};
  return tag_field(v.tags, name);
}

Values subnet_field(const SubnetRecord& s, const std::string& zone_id, uint64_t available,
                    const std::string& name) {
  using V = std::vector<std::string>;
  if (name == "subnet-id" || name == "subnetId") return V{s.id};
  if (name == "vpc-id" || name == "vpcId") return V{s.vpc_id};
  if (name == "availability-zone" || name == "availabilityZone") return V{s.zone};
  if (name == "availability-zone-id" || name == "availabilityZoneId") return V{zone_id};
  if (name == "default-for-az" || name == "defaultForAz") return V{boolean_text(s.default_for_az)};
  if (name == "cidr" || name == "cidr-block" || name == "cidrBlock") return V{s.cidr_block};
  if (name == "state") return V{s.state};
  if (name == "owner-id") return V{s.owner_id};
  if (name == "available-ip-address-count" || name == "availableIpAddressCount")
    return V{std::to_string(available)};
  if (name == "map-public-ip-on-launch") return V{boolean_text(s.map_public_ip_on_launch)};
  return tag_field(s.tags, name);
}

}  // namespace

void Ec2Api::add_network_actions() {
  actions_["DescribeVpcs"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto ids = c.params.list("VpcId");
    if (ids.size() > 1000) return invalid_parameter_value("At most 1000 VPC ids");
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    if (auto e = check_filter_names(*filters,
                                    [](const std::string& n) { return vpc_field(VpcRecord{}, n); }))
      return *e;
    auto max = c.params.get_int("MaxResults", 5, 1000);  // accepted; one page holds them all
    if (!max.ok()) return bad_parameter(max.status());
    auto all = cloud_.vpcs();
    if (!all.ok()) return all.error();
    std::vector<std::string> found;
    XmlWriter w("DescribeVpcsResponse");
    w.text("requestId", c.request_id).open("vpcSet");
    for (const auto& v : *all) {
      if (!ids.empty() && std::find(ids.begin(), ids.end(), v.id) == ids.end()) continue;
      found.push_back(v.id);
      if (!matches_all(*filters, [&](const std::string& n) { return vpc_field(v, n); })) continue;
      w.open("item")
          .text("cidrBlock", v.cidr_block)
          .text("dhcpOptionsId", "default")
          .text("state", v.state)
          .text("vpcId", v.id)
          .text("ownerId", v.owner_id)
          .text("instanceTenancy", "default");
      w.open("cidrBlockAssociationSet")
          .open("item")
          .text("associationId", "vpc-cidr-assoc-" + v.id.substr(4))
          .text("cidrBlock", v.cidr_block)
          .open("cidrBlockState")
          .text("state", "associated")
          .close()
          .close()
          .close();
      w.boolean("isDefault", v.is_default);
      render_tags(w, v.tags);
      w.close();
    }
    if (auto e = missing_ids(ids, found, "InvalidVpcID.NotFound", "vpc")) return *e;
    return w.finish();
  };

  actions_["DescribeSubnets"] = [this](const Call& c) -> Ec2Result<std::string> {
    const auto ids = c.params.list("SubnetId");
    if (ids.size() > 1000) return invalid_parameter_value("At most 1000 subnet ids");
    auto filters = parse_filters(c.params);
    if (!filters.ok()) return filters.error();
    if (auto e = check_filter_names(
            *filters, [](const std::string& n) { return subnet_field(SubnetRecord{}, "", 0, n); }))
      return *e;
    auto max = c.params.get_int("MaxResults", 5, 1000);  // accepted; one page holds them all
    if (!max.ok()) return bad_parameter(max.status());
    auto all = cloud_.subnets();
    if (!all.ok()) return all.error();
    const auto& o = cloud_.options();
    std::vector<std::string> found;
    XmlWriter w("DescribeSubnetsResponse");
    w.text("requestId", c.request_id).open("subnetSet");
    for (const auto& s : *all) {
      if (!ids.empty() && std::find(ids.begin(), ids.end(), s.id) == ids.end()) continue;
      found.push_back(s.id);
      // As DescribeAvailabilityZones numbers them.
      std::string zone_id;
      auto z = std::find(o.zones.begin(), o.zones.end(), s.zone);
      if (z != o.zones.end()) zone_id = fmt::format("{}-az{}", o.region, z - o.zones.begin() + 1);
      auto used = cloud_.used_addresses(s.id);
      if (!used.ok()) return used.error();
      const auto cidr = parse_cidr(s.cidr_block);
      const uint64_t total = cidr ? cidr->assignable_count() : 0;
      const uint64_t available = total - std::min<uint64_t>(total, used->size());
      if (!matches_all(*filters, [&](const std::string& n) {
            return subnet_field(s, zone_id, available, n);
          }))
        continue;
      w.open("item")
          .text("availabilityZone", s.zone)
          .text("availabilityZoneId", zone_id)
          .number("availableIpAddressCount", static_cast<int64_t>(available))
          .text("cidrBlock", s.cidr_block)
          .boolean("defaultForAz", s.default_for_az)
          .boolean("mapPublicIpOnLaunch", s.map_public_ip_on_launch)
          .text("state", s.state)
          .text("subnetId", s.id)
          .text("vpcId", s.vpc_id)
          .text("ownerId", s.owner_id)
          .boolean("assignIpv6AddressOnCreation", false)
          .open("ipv6CidrBlockAssociationSet")
          .close();
      render_tags(w, s.tags);
      w.text("subnetArn", fmt::format("arn:aws:ec2:{}:{}:subnet/{}", o.region, s.owner_id, s.id));
      w.close();
    }
    if (auto e = missing_ids(ids, found, "InvalidSubnetID.NotFound", "subnet")) return *e;
    return w.finish();
  };
}

}  // namespace nimbus::cloud
