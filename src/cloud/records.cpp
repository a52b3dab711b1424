#include "cloud/records.h"

#include <fmt/format.h>

#include <set>

namespace nimbus::cloud {

NLOHMANN_JSON_SERIALIZE_ENUM(InstanceState, {{InstanceState::kPending, "pending"},
                                             {InstanceState::kRunning, "running"},
                                             {InstanceState::kShuttingDown, "shutting-down"},
                                             {InstanceState::kTerminated, "terminated"},
                                             {InstanceState::kStopping, "stopping"},
                                             {InstanceState::kStopped, "stopped"}})
NLOHMANN_JSON_SERIALIZE_ENUM(Desired, {{Desired::kRunning, "running"},
                                       {Desired::kStopped, "stopped"},
                                       {Desired::kTerminated, "terminated"}})

// clang-format off
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HostRecord, id, zone, api_url, api_token, index,
    host, images, joined_at, draining, tunnel_endpoint)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Claim, vcpus, memory_mib, disk_mib, compute,
    public_ip)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HostAllocation, instances)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(InstanceMetadataOptions, http_tokens,
    http_endpoint, http_put_response_hop_limit, instance_metadata_tags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MoveResult, id, from, to, ok, error, downtime_ms,
    total_ms, at, old_public_ip, new_public_ip)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(InstanceRecord, id, reservation_id, owner_id,
    requester_id, image_id, instance_type, key_name, client_token, zone, host, launch_index,
    vcpus, memory_mib, disk_mib, state, desired, force_stop, reboot_requests, reboots_done,
    reason, state_reason_code, state_reason_message, private_ip, public_ip, vpc_id, subnet_id,
    launch_time,
    terminated_at_ms, security_groups, placement_group, user_data, public_key, tags, vm_state,
    vm_ready, vm_last_exit, metadata_hash, metadata_options, metadata_options_applied,
    move_to, move_from, move_public_ip, move_drain, move_id, last_move)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SecurityRule, protocol, from_port, to_port, cidrs,
    source_groups)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SecurityGroup, id, name, description, owner_id,
    vpc_id, ingress, tags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PlacementGroup, id, name, strategy,
    partition_count, state, tags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ImageFile, name, role, sha256, size, path)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ImageRecord, id, name, description, owner_id,
    state, creation_date, architecture, disk_mib, files, is_public, tags, source_instance,
    source_host, no_reboot, state_reason_code, state_reason_message)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VpcRecord, id, cidr_block, owner_id, state,
    is_default, vni, tags)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SubnetRecord, id, vpc_id, zone, cidr_block,
    owner_id, state, default_for_az, map_public_ip_on_launch, tags)
// clang-format on

std::string_view state_name(InstanceState s) {
  switch (s) {
    case InstanceState::kPending:
      return "pending";
    case InstanceState::kRunning:
      return "running";
    case InstanceState::kShuttingDown:
      return "shutting-down";
    case InstanceState::kTerminated:
      return "terminated";
    case InstanceState::kStopping:
      return "stopping";
    case InstanceState::kStopped:
      return "stopped";
  }
  return "pending";
}

int state_code(InstanceState s) {
  switch (s) {
    case InstanceState::kPending:
      return 0;
    case InstanceState::kRunning:
      return 16;
    case InstanceState::kShuttingDown:
      return 32;
    case InstanceState::kTerminated:
      return 48;
    case InstanceState::kStopping:
      return 64;
    case InstanceState::kStopped:
      return 80;
  }
  return 0;
}

std::optional<InstanceState> parse_state(std::string_view name) {
  for (InstanceState s :
       {InstanceState::kPending, InstanceState::kRunning, InstanceState::kShuttingDown,
        InstanceState::kTerminated, InstanceState::kStopping, InstanceState::kStopped}) {
    if (state_name(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view desired_name(Desired d) {
  switch (d) {
    case Desired::kRunning:
      return "running";
    case Desired::kStopped:
      return "stopped";
    case Desired::kTerminated:
      return "terminated";
  }
  return "running";
}

nlohmann::json to_json(const HostRecord& r) { return r; }
nlohmann::json to_json(const HostAllocation& r) { return r; }
nlohmann::json to_json(const InstanceRecord& r) { return r; }
nlohmann::json to_json(const SecurityGroup& r) { return r; }
nlohmann::json to_json(const PlacementGroup& r) { return r; }
nlohmann::json to_json(const ImageRecord& r) { return r; }
nlohmann::json to_json(const VpcRecord& r) { return r; }
nlohmann::json to_json(const SubnetRecord& r) { return r; }

namespace {

template <typename T>
Result<T> parse_record(const std::string& text, const char* what) {
  try {
    return nlohmann::json::parse(text).get<T>();
  } catch (const std::exception& e) {
    return Status::internal(
        fmt::format("the store holds a {} that does not parse: {}", what, e.what()));
  }
}

}  // namespace

Result<HostRecord> host_from_json(const std::string& t) {
  return parse_record<HostRecord>(t, "host");
}
Result<HostAllocation> allocation_from_json(const std::string& t) {
  return parse_record<HostAllocation>(t, "host allocation");
}
Result<InstanceRecord> instance_from_json(const std::string& t) {
  return parse_record<InstanceRecord>(t, "instance");
}
Result<SecurityGroup> security_group_from_json(const std::string& t) {
  return parse_record<SecurityGroup>(t, "security group");
}
Result<PlacementGroup> placement_group_from_json(const std::string& t) {
  return parse_record<PlacementGroup>(t, "placement group");
}
Result<ImageRecord> image_from_json(const std::string& t) {
  return parse_record<ImageRecord>(t, "image");
}
Result<VpcRecord> vpc_from_json(const std::string& t) { return parse_record<VpcRecord>(t, "VPC"); }
Result<SubnetRecord> subnet_from_json(const std::string& t) {
  return parse_record<SubnetRecord>(t, "subnet");
}

std::optional<std::string> free_public_ip(const std::string& prefix, unsigned index,
                                          const HostAllocation& a) {
  std::set<std::string> used;
  for (const auto& [id, c] : a.instances) used.insert(c.public_ip);
  for (int last = 2; last <= 254; ++last) {
    std::string ip = fmt::format("{}.{}.{}", prefix, index, last);
    if (!used.count(ip)) return ip;
  }
  return std::nullopt;
}

}  // namespace nimbus::cloud
