// Placement groups: cluster, spread and partition (the scheduler applies their rules).
#include <fmt/format.h>

#include <algorithm>

#include "cloud/cloud.h"

namespace nimbus::cloud {

Ec2Result<std::vector<PlacementGroup>> Cloud::placement_groups() {
  auto all = store_.list(kPlacementGroupsPrefix);
  if (!all.ok()) return from_status(all.status());
  std::vector<PlacementGroup> out;
  for (const KeyValue& kv : *all) {
    auto g = placement_group_from_json(kv.value);
    if (!g.ok()) return from_status(g.status());
    out.push_back(std::move(*g));
  }
  return out;
}

Ec2Result<PlacementGroup> Cloud::create_placement_group(const std::string& name,
                                                        const std::string& strategy,
                                                        unsigned partition_count,
                                                        const Tags& tags) {
  if (name.empty()) return ec2_error("MissingParameter", "GroupName is required");
  if (name.size() > 255 || !std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return c > 0x20 && c < 0x7f && c != '/';
      }))
    return ec2_error("InvalidParameterValue",
                     "GroupName must be 1-255 printable ASCII characters without spaces or /");
  if (strategy != "cluster" && strategy != "spread" && strategy != "partition")
    return ec2_error(
        "InvalidParameterValue",
        fmt::format("Invalid value '{}' for Strategy (cluster, spread or partition)", strategy));
  if (strategy == "partition" && (partition_count < 1 || partition_count > 7))
    return ec2_error("InvalidParameterValue", "PartitionCount must be 1 to 7");
  if (strategy != "partition" && partition_count != 0)
    return ec2_error("InvalidParameterValue", "PartitionCount is only for partition groups");
  PlacementGroup g;
  g.id = new_id("pg");
  g.name = name;
  g.strategy = strategy;
  g.partition_count = partition_count;
  g.tags = tags;
  const std::string key = kPlacementGroupsPrefix + name;
  auto r = store_.txn({{key, 0}}, {{Op::Kind::kPut, key, to_json(g).dump()}});
  if (!r.ok()) return from_status(r.status());
  if (!r->succeeded)
    return ec2_error("InvalidPlacementGroup.Duplicate",
                     fmt::format("The Placement Group '{}' already exists", name));
  return g;
}

Ec2Result<bool> Cloud::delete_placement_group(const std::string& name) {
  const std::string key = kPlacementGroupsPrefix + name;
  auto kv = store_.get(key);
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv)
    return ec2_error("InvalidPlacementGroup.Unknown",
                     fmt::format("The Placement Group '{}' is unknown", name));
  auto insts = instances();
  if (!insts.ok()) return insts.error();
  for (const auto& i : *insts) {
    if (i.placement_group == name && i.state != InstanceState::kTerminated)
      return ec2_error("InvalidPlacementGroup.InUse",
                       fmt::format("The Placement Group '{}' is in use by {}", name, i.id));
  }
  auto r = store_.txn({{key, (*kv)->mod_revision}}, {{Op::Kind::kDelete, key, ""}});
  if (!r.ok()) return from_status(r.status());
  return true;
}

}  // namespace nimbus::cloud
