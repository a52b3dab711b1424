// The control plane's records, as they live in the store (one JSON document per key):
//
//   /hosts/ID            HostRecord: a host that joined (zone, API, capacity it reported)
//   /alloc/ID            HostAllocation: what the cloud has claimed on that host
//   /instances/I-ID      InstanceRecord
//   /tokens/TOKEN        ClientToken of a RunInstances: the reservation it made
//   /security-groups/SG  SecurityGroup
//   /placement-groups/N  PlacementGroup
//   /images/AMI          ImageRecord
//   /image-names/OWNER/NAME  the AMI id: image names are unique per owner
//   /vpcs/VPC            VpcRecord (the region's default VPC)
//   /subnets/SUBNET      SubnetRecord (one default subnet per zone)
//   /addresses/SUBNET/IP an allocated private address: {"instance": ID}
//
// Every claim of capacity is a transaction compared on the /alloc/ID revision, so two
// control-plane threads (or, later, replicas) never hand out the same vCPU twice.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::cloud {

inline constexpr const char* kHostsPrefix = "/hosts/";
inline constexpr const char* kAllocPrefix = "/alloc/";
// A host's liveness on a store with leases (etcd): /alive/HOST, its last reported VMs,
// attached to a lease of the host timeout that heartbeats keep alive (liveness.cpp).
inline constexpr const char* kAlivePrefix = "/alive/";
inline constexpr const char* kInstancesPrefix = "/instances/";
inline constexpr const char* kTokensPrefix = "/tokens/";
inline constexpr const char* kSecurityGroupsPrefix = "/security-groups/";
inline constexpr const char* kPlacementGroupsPrefix = "/placement-groups/";
inline constexpr const char* kImagesPrefix = "/images/";
inline constexpr const char* kImageNamesPrefix = "/image-names/";
inline constexpr const char* kVpcsPrefix = "/vpcs/";
inline constexpr const char* kSubnetsPrefix = "/subnets/";
inline constexpr const char* kAddressesPrefix = "/addresses/";

using Tags = std::map<std::string, std::string>;

struct HostRecord {
  std::string id, zone, api_url, api_token;
  unsigned index = 0;  // 1..254: the host's public pool is PUBLIC_PREFIX.INDEX.0/24
  nlohmann::json host = nlohmann::json::object();   // nimbusd's GET /v1/host, last reported
  nlohmann::json images = nlohmann::json::array();  // nimbusd's GET /v1/images
  std::string joined_at;
  bool draining = false;
  std::string tunnel_endpoint;  // "IP:PORT" (UDP) of its VPC tunnel; "" when it has none
};

// One instance's claim on its host. Compute (vCPUs, memory) is held while the instance
// should run; disk and the public address for as long as it exists.
struct Claim {
  unsigned vcpus = 0;
  uint64_t memory_mib = 0, disk_mib = 0;
  bool compute = true;
  std::string public_ip;
};

struct HostAllocation {
  std::map<std::string, Claim> instances;  // by instance id
};

// The lowest address of a host's public pool PREFIX.INDEX.2-254 that none of its claims
// holds (launches and moves hand them out), or none when all are taken.
std::optional<std::string> free_public_ip(const std::string& prefix, unsigned index,
                                          const HostAllocation& a);

// EC2's states (InstanceState codes: pending 0, running 16, shutting-down 32,
// terminated 48, stopping 64, stopped 80).
enum class InstanceState { kPending, kRunning, kShuttingDown, kTerminated, kStopping, kStopped };
std::string_view state_name(InstanceState s);
int state_code(InstanceState s);
std::optional<InstanceState> parse_state(std::string_view name);

// What the owner asked for; the reconciler makes the host match it.
enum class Desired { kRunning, kStopped, kTerminated };
std::string_view desired_name(Desired d);

// EC2's instance metadata options as the owner set them (RunInstances MetadataOptions,
// ModifyInstanceMetadataOptions); the host's VMM gets them as config::MetadataOptions, and
// instance_metadata_tags decides whether the tags are in the metadata data.
struct InstanceMetadataOptions {
  std::string http_tokens = "optional";             // optional | required
  std::string http_endpoint = "enabled";            // enabled | disabled
  unsigned http_put_response_hop_limit = 1;         // 1..64
  std::string instance_metadata_tags = "disabled";  // enabled | disabled
  bool operator==(const InstanceMetadataOptions&) const = default;
};

// The outcome of an instance's last move (live migration between hosts; docs/cloud.md, "Moves
// and drains").
struct MoveResult {
  uint64_t id = 0;  // the move's number (InstanceRecord::move_id when it was asked)
  std::string from, to;
  bool ok = false;
  std::string error;                       // why it failed ("" when ok)
  double downtime_ms = -1, total_ms = -1;  // as the source host measured (-1: unknown)
  std::string at;                          // ISO 8601, when it ended
  std::string old_public_ip, new_public_ip;
};

struct InstanceRecord {
  std::string id, reservation_id, owner_id, requester_id;
  std::string image_id, instance_type, key_name, client_token;
  std::string zone, host;
  unsigned launch_index = 0;
  unsigned vcpus = 1;
  uint64_t memory_mib = 256, disk_mib = 0;
  InstanceState state = InstanceState::kPending;
  Desired desired = Desired::kRunning;
  bool force_stop = false;       // the pending stop is a forced one
  uint64_t reboot_requests = 0;  // RebootInstances count; the reconciler serves each once
  uint64_t reboots_done = 0;
  std::string reason;  // StateTransitionReason
  std::string state_reason_code, state_reason_message;
  std::string private_ip, public_ip;
  // Its VPC and subnet: private_ip is allocated from the subnet at launch
  // (/addresses/SUBNET/IP). Empty for instances from before VPCs: their private_ip is
  // what their host reports.
  std::string vpc_id, subnet_id;
  std::string launch_time;                   // ISO 8601, the last start
  int64_t terminated_at_ms = 0;              // listed for an hour after
  std::vector<std::string> security_groups;  // ids
  std::string placement_group;
  std::string user_data;  // base64, as it came
  // The key pair's OpenSSH public key at launch: served to the guest even after the
  // pair is deleted, as EC2 does.
  std::string public_key;
  Tags tags;
  // What the host said last (the reconciler's view): nimbusd's vm state and readiness.
  std::string vm_state;
  bool vm_ready = false;
  std::string vm_last_exit;
  std::string metadata_hash;  // of the metadata last sent to its host (instance_metadata.h)
  InstanceMetadataOptions metadata_options;
  // Its host has metadata_options (DescribeInstances' metadataOptions state "applied", else
  // "pending"). Records from before the options existed: the host has the defaults.
  bool metadata_options_applied = true;
  // A move to another host (live migration), asked by `move` or a drain of its host:
  // move_to is the target ("*": the scheduler's pick when it starts), "" when none. Once
  // the reconciler claimed capacity on the target (one transaction with this record)
  // move_from is the host it leaves and move_public_ip its address on the target; the move
  // ends by setting host (one transaction with both allocations) or failing (last_move).
  std::string move_to, move_from, move_public_ip;
  bool move_drain = false;  // asked by a drain (undrain cancels it until it started)
  uint64_t move_id = 0;     // the number of the move asked last (1, 2, ...)
  MoveResult last_move;     // last_move.id == 0: never moved
  // No move asked or under way any more (it ended, failed or was cancelled).
  void clear_move() {
    move_to.clear();
    move_from.clear();
    move_public_ip.clear();
    move_drain = false;
  }
};

struct SecurityRule {
  std::string protocol;  // tcp, udp, icmp, -1
  int from_port = -1, to_port = -1;
  std::vector<std::string> cidrs;
  std::vector<std::string> source_groups;
  bool operator==(const SecurityRule&) const = default;
};

struct SecurityGroup {
  std::string id, name, description, owner_id, vpc_id;
  std::vector<SecurityRule> ingress;
  Tags tags;
};

struct PlacementGroup {
  std::string id, name, strategy;  // cluster | spread | partition
  unsigned partition_count = 0;
  std::string state = "available";
  Tags tags;
};

struct ImageFile {
  std::string name, role, sha256;  // role: kernel | disk | initrd
  uint64_t size = 0;
  std::string path;  // on the control plane's file system
};

// An image: the bundled one (public, registered at start), or one made by CreateImage
// from an instance (private to its owner): `pending` until the image step exported it on
// the instance's host and downloaded its files, then `available` (or `failed`, with the
// reason).
struct ImageRecord {
  std::string id, name, description, owner_id, state = "available", creation_date;
  std::string architecture = "riscv64";
  uint64_t disk_mib = 0;  // the root disk's size
  std::vector<ImageFile> files;
  bool is_public = true;
  Tags tags;
  // CreateImage: the instance (and its host at the time), and whether it is rebooted.
  std::string source_instance, source_host;
  bool no_reboot = false;
  std::string state_reason_code, state_reason_message;
};

// A VPC: its CIDR and the VXLAN-style network id its hosts' tunnels carry it on.
struct VpcRecord {
  std::string id, cidr_block, owner_id, state = "available";
  bool is_default = false;
  unsigned vni = 0;  // 1..16777215
  Tags tags;
};

// A subnet of a VPC in one zone. Its first four addresses and the last are reserved, as
// EC2's: network, router (.1, the gateway), DNS (.2), .3, broadcast.
struct SubnetRecord {
  std::string id, vpc_id, zone, cidr_block, owner_id, state = "available";
  bool default_for_az = false, map_public_ip_on_launch = true;
  Tags tags;
};

nlohmann::json to_json(const HostRecord& r);
nlohmann::json to_json(const HostAllocation& r);
nlohmann::json to_json(const InstanceRecord& r);
nlohmann::json to_json(const SecurityGroup& r);
nlohmann::json to_json(const PlacementGroup& r);
nlohmann::json to_json(const ImageRecord& r);
nlohmann::json to_json(const VpcRecord& r);
nlohmann::json to_json(const SubnetRecord& r);

// Parsers of the store's documents: a document that does not parse is kInternal (the
// store holds only what these functions wrote).
Result<HostRecord> host_from_json(const std::string& text);
Result<HostAllocation> allocation_from_json(const std::string& text);
Result<InstanceRecord> instance_from_json(const std::string& text);
Result<SecurityGroup> security_group_from_json(const std::string& text);
Result<PlacementGroup> placement_group_from_json(const std::string& text);
Result<ImageRecord> image_from_json(const std::string& text);
Result<VpcRecord> vpc_from_json(const std::string& text);
Result<SubnetRecord> subnet_from_json(const std::string& text);

}  // namespace nimbus::cloud
