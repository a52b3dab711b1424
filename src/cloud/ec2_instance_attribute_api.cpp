// DescribeInstanceAttribute: one attribute of one instance, as EC2 answers it (botocore's
// InstanceAttribute shape). Ansible's amazon.aws.ec2_instance asks for groupSet (and
// ebsOptimized, disableApiTermination when given) after every launch and on every rerun
// to find what to change. Values Nimbus has no notion of have EC2's defaults for a
// hardware-virtualized instance: no termination or stop protection, not EBS-optimized, no
// ENA or SR-IOV, source/destination check on, no kernel or RAM disk, no product codes; an
// instance that shuts itself down is stopped.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <string_view>

#include "cloud/ec2_api.h"

namespace nimbus::cloud {

namespace {

constexpr std::array<std::string_view, 16> kAttributes = {"instanceType",
                                                          "kernel",
                                                          "ramdisk",
                                                          "userData",
                                                          "disableApiTermination",
                                                          "instanceInitiatedShutdownBehavior",
                                                          "rootDeviceName",
                                                          "blockDeviceMapping",
                                                          "productCodes",
                                                          "sourceDestCheck",
                                                          "groupSet",
                                                          "ebsOptimized",
                                                          "sriovNetSupport",
                                                          "enaSupport",
                                                          "enclaveOptions",
                                                          "disableApiStop"};

void value(XmlWriter& w, std::string_view tag, std::string_view v) {
  w.open(tag).text("value", v).close();
}

void flag(XmlWriter& w, std::string_view tag, bool v) { w.open(tag).boolean("value", v).close(); }

}  // namespace

void Ec2Api::add_instance_attribute_actions() {
  actions_["DescribeInstanceAttribute"] = [this](const Call& c) -> Ec2Result<std::string> {
    const QueryParams& p = c.params;
    const std::string id = p.get_or("InstanceId", "");
    if (id.empty()) return missing_parameter("InstanceId");
    if (!is_id(id, "i"))
      return ec2_error("InvalidInstanceID.Malformed",
                       fmt::format("Invalid id: \"{}\"", quote_value_for_message(id)));
    const std::string attr = p.get_or("Attribute", "");
    if (attr.empty()) return missing_parameter("Attribute");
    if (std::find(kAttributes.begin(), kAttributes.end(), attr) == kAttributes.end())
      return invalid_parameter_value(
          fmt::format("Value ({}) for parameter attribute is invalid. Unknown attribute.",
                      quote_value_for_message(attr)));
    auto dry = p.get_bool("DryRun");
    if (!dry.ok()) return bad_parameter(dry.status());
    auto i = cloud_.instance(id);
    if (!i.ok()) return i.error();
    if (dry->value_or(false))
      return ec2_error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.",
                       412);

    XmlWriter w("DescribeInstanceAttributeResponse");
    w.text("requestId", c.request_id).text("instanceId", i->id);
    if (attr == "instanceType") {
      value(w, attr, i->instance_type);
    } else if (attr == "userData") {
      // As it came (base64); an instance without user data has an empty element.
      if (i->user_data.empty()) {
        w.open(attr).close();
      } else {
        value(w, attr, i->user_data);
      }
    } else if (attr == "instanceInitiatedShutdownBehavior") {
      value(w, attr, "stop");
    } else if (attr == "rootDeviceName") {
      value(w, attr, "/dev/vda");
    } else if (attr == "sourceDestCheck") {
      flag(w, attr, true);
    } else if (attr == "disableApiTermination" || attr == "disableApiStop" ||
               attr == "ebsOptimized" || attr == "enaSupport") {
      flag(w, attr, false);
    } else if (attr == "enclaveOptions") {
      w.open(attr).boolean("enabled", false).close();
    } else if (attr == "groupSet") {
      std::map<std::string, std::string> names;
      auto groups = cloud_.security_groups();
      if (!groups.ok()) return groups.error();
      for (const auto& g : *groups) names[g.id] = g.name;
      w.open(attr);
      for (const auto& g : i->security_groups) {
        auto it = names.find(g);
        w.open("item")
            .text("groupId", g)
            .text("groupName", it == names.end() ? "" : it->second)
            .close();
      }
      w.close();
    } else if (attr == "blockDeviceMapping") {
      w.open(attr)
          .open("item")
          .text("deviceName", "/dev/vda")
          .open("ebs")
          .text("volumeId", "vol-" + i->id.substr(2))
          .text("status", i->state == InstanceState::kTerminated ? "detached" : "attached")
          .text("attachTime", i->launch_time)
          .boolean("deleteOnTermination", true)
          .close()
          .close()
          .close();
    } else {  // kernel, ramdisk, productCodes, sriovNetSupport: none
      w.open(attr).close();
    }
    return w.finish();
  };
}

}  // namespace nimbus::cloud
