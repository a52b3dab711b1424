// One region's control plane: the operations of the EC2 API over the store (store.h),
// the scheduler (scheduler.h) and what the hosts report. The Query API (ec2_api.h) parses
// requests into these calls and renders what they return; the reconciler (reconciler.h)
// makes the hosts match the records these calls write. Every operation either changes
// the store in one transaction or returns an Ec2Error and changes nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cloud/ec2_result.h"
#include "cloud/filters.h"
#include "cloud/instance_types.h"
#include "cloud/key_pairs.h"
#include "cloud/networks.h"
#include "cloud/records.h"
#include "cloud/regions.h"
#include "cloud/scheduler.h"
#include "cloud/store.h"

namespace nimbus::cloud {

struct CloudOptions {
  std::string region = "nimbus-west-1";
  std::vector<std::string> zones;  // empty: REGION + a, b, c
  std::string account_id = "000000000000";
  Strategy strategy = Strategy::kSpread;
  std::string public_prefix = "127.100";         // host K's public pool: PREFIX.K.0/24
  std::chrono::milliseconds host_timeout{6000};  // three heartbeats
  std::chrono::seconds heartbeat_interval{2};
  std::chrono::seconds terminated_ttl{3600};
  std::string replica_id;  // this control plane replica's name (health; leader election)  //
                           // terminated instances stay listed this long
  std::string endpoint_url = "http://127.0.0.1:8773";
  // Every region of the cloud with its endpoint, this one included (--regions-file); empty:
  // just this region at endpoint_url. DescribeRegions and GET /nimbus/v1/regions list it.
  std::vector<RegionEndpoint> regions;
  std::vector<InstanceType> instance_types;  // empty: default_instance_types()
  std::string join_token;                    // hosts send it as a bearer token
};

struct RunRequest {
  std::string image_id, instance_type = "t3.micro", key_name, user_data, client_token;
  unsigned min_count = 1, max_count = 1;
  std::string zone, placement_group;
  std::vector<std::string> security_group_ids, security_group_names;
  Tags instance_tags;
  uint64_t root_volume_gib = 0;              // 0: the image's size
  InstanceMetadataOptions metadata_options;  // checked by the caller (the EC2 API)
  // SubnetId (else the default subnet of the zone each instance is placed in) and
  // PrivateIpAddress (else the lowest free address of the subnet); "" when not given.
  std::string subnet_id, private_ip;
};

// ModifyInstanceMetadataOptions: what to change (values checked by the caller).
struct MetadataOptionsChange {
  std::optional<std::string> http_tokens, http_endpoint, instance_metadata_tags;
  std::optional<unsigned> hop_limit;
};

struct Reservation {
  std::string id, owner_id;
  std::vector<InstanceRecord> instances;
};

struct StateChange {
  std::string instance_id;
  InstanceState previous = InstanceState::kPending, current = InstanceState::kPending;
};

// What a host reported in its last heartbeat. On a store without leases (SQLite) it is kept
// in memory only (a restarted control plane learns it again within one heartbeat
// interval). On a store with leases (etcd) every replica keeps it from a watch on
// /alive/HOST (liveness.cpp): the key is there (with the VMs) while the host's lease lives.
struct HostLiveness {
  std::chrono::steady_clock::time_point last_seen;
  nlohmann::json vms = nlohmann::json::array();  // nimbusd's GET /v1/vms
  bool down = false;     // leases: its /alive key was deleted (the lease expired)
  int64_t revision = 0;  // leases: the store revision this was last changed at
};

// The operator's view of one host.
struct HostView {
  HostRecord record;
  HostAllocation allocation;
  bool alive = false;
  double seconds_since_heartbeat = -1;
};

class Cloud {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  Cloud(Store& store, CloudOptions options, Clock clock = nullptr);
  ~Cloud();  // stops the liveness watch
  Cloud(const Cloud&) = delete;
  Cloud& operator=(const Cloud&) = delete;

  // Creates the default VPC and subnets (init_networks) and the default security group
  // when the store has none; on a store with watches, lists and watches the hosts'
  // liveness keys (start_liveness).
  Status init();
  // Whether host liveness lives in the store (leases and a watch: etcd) rather than in
  // this process's memory (SQLite).
  bool shared_liveness() const { return shared_liveness_.load(); }

  // Leadership among replicas (main.cpp's LeaderElector): shown by GET /nimbus/v1/health.
  void set_leader(bool leader) { leader_ = leader; }
  bool is_leader() const { return leader_.load(); }
  const CloudOptions& options() const { return options_; }
  Store& store() { return store_; }
  const std::vector<InstanceType>& instance_types() const { return options_.instance_types; }
  std::vector<std::string> zones() const { return options_.zones; }

  // --- hosts (hosts.cpp)
  // A heartbeat from nimbusd (docs/cloud.md, "Joining hosts"): registers the host on
  // first contact, refreshes what it reported. Returns the interval to use.
  Ec2Result<nlohmann::json> heartbeat(const nlohmann::json& body);
  bool host_alive(const std::string& host_id) const;
  std::optional<HostLiveness> liveness(const std::string& host_id) const;
  Ec2Result<std::vector<HostView>> hosts();
  Status set_draining(const std::string& host_id, bool draining);

  // --- images (images.cpp)
  // Registers the image whose files are in `dir` (Image, rootfs.ext4, initramfs.cpio.gz)
  // with an id derived from their checksums; returns it. Idempotent.
  Ec2Result<ImageRecord> register_image_dir(const std::string& dir, const std::string& name,
                                            const std::string& description);
  Ec2Result<std::vector<ImageRecord>> images();
  Ec2Result<ImageRecord> image(const std::string& id);

  // --- instances (instances.cpp)
  Ec2Result<Reservation> run_instances(const RunRequest& req);
  Ec2Result<std::vector<InstanceRecord>> instances();  // every instance, terminated too
  Ec2Result<InstanceRecord> instance(const std::string& id);
  Ec2Result<std::vector<StateChange>> start_instances(const std::vector<std::string>& ids);
  Ec2Result<std::vector<StateChange>> stop_instances(const std::vector<std::string>& ids,
                                                     bool force);
  Ec2Result<std::vector<StateChange>> terminate_instances(const std::vector<std::string>& ids);
  Ec2Result<bool> reboot_instances(const std::vector<std::string>& ids);
  Ec2Result<bool> modify_instance_type(const std::string& id, const std::string& type);
  // Running, pending, stopping or stopped instances (IncorrectInstanceState otherwise); the
  // record after (metadata_options_applied false until the reconciler sent them).
  Ec2Result<InstanceRecord> modify_instance_metadata_options(const std::string& id,
                                                             const MetadataOptionsChange& change);
  // Updates one instance record with a compare-and-swap retry; `change` returns false to
  // leave it as it is.
  Status update_instance(const std::string& id, const std::function<bool(InstanceRecord&)>& change);
  // Releases an instance's claim on its host: compute only, or everything (terminated).
  Status release_claim(const InstanceRecord& inst, bool everything);
  // Claims compute for a stopped instance about to start again, on its own host.
  Ec2Result<bool> claim_compute(const InstanceRecord& inst);

  // --- moves and drains (moves.cpp; docs/cloud.md, "Moves and drains")
  // Asks to move a running instance to `host` (its zone's other hosts only; "" the
  // scheduler's pick among them). Checked now (InvalidInstanceID.NotFound and
  // InvalidHostId.NotFound 404; IncorrectInstanceState 409: not running or already moving;
  // InsufficientInstanceCapacity 409: the target is down, draining or full); the reconciler
  // moves it. Returns the record (move_to, move_id).
  Ec2Result<InstanceRecord> request_move(const std::string& id, const std::string& host);
  struct DrainResult {
    std::vector<InstanceRecord> moving;                        // a move is asked (or was)
    std::vector<std::pair<std::string, std::string>> staying;  // id, why it stays
  };
  // Marks the host draining (nothing new is placed on it) and asks a move of each of its
  // running (or pending) instances to the scheduler's pick; the reconciler runs them one at
  // a time per host.
  Ec2Result<DrainResult> drain_host(const std::string& host);
  // Takes new instances again; cancels the drain's moves that have not started. Returns
  // the instances whose move was cancelled.
  Ec2Result<std::vector<std::string>> undrain_host(const std::string& host);
  // The reconciler's steps of a move. begin: claims the target's capacity (the launches'
  // claim: compared on the target's /alloc revision) and records move_from, in one
  // transaction; returns the record (unchanged when already begun).
  Ec2Result<InstanceRecord> begin_move(const std::string& id);
  // The VM runs on `target` now: host, public address and both claims in one transaction.
  // Also for a VM found on another host than its record says (a move whose end was not
  // recorded): its claim there is made if missing.
  Status finish_move(const std::string& id, const std::string& target, double downtime_ms,
                     double total_ms);
  // The move failed (the VM stays where it is): the target's claim is released and the
  // reason kept in last_move, in one transaction.
  Status fail_move(const std::string& id, const std::string& error);

  // --- networks (networks.cpp, networks.h)
  // Creates the region's default VPC and the default subnet of every zone that has none.
  Status init_networks();
  Ec2Result<std::vector<VpcRecord>> vpcs();
  Ec2Result<std::vector<SubnetRecord>> subnets();
  Ec2Result<SubnetRecord> subnet(const std::string& id);  // InvalidSubnetID.NotFound
  // The subnet's allocated addresses (/addresses/SUBNET/), as numbers.
  Ec2Result<std::set<uint32_t>> used_addresses(const std::string& subnet_id);
  // nimbusd's "network" of the VM create for an instance in a subnet: vni, address
  // (IP/PREFIX), gateway, mtu. nullopt for an instance without a subnet.
  Result<std::optional<nlohmann::json>> vm_network(const InstanceRecord& inst);
  // Frees a terminated instance's private address (only if it is still its own).
  Status release_address(const InstanceRecord& inst);
  // The heartbeat reply's tunnel_peers: every other alive host with a tunnel endpoint.
  Result<nlohmann::json> tunnel_peers(const std::string& self);

  // --- security groups (security_groups.cpp)
  Ec2Result<SecurityGroup> create_security_group(const std::string& name,
                                                 const std::string& description, const Tags& tags);
  Ec2Result<std::vector<SecurityGroup>> security_groups();
  Ec2Result<bool> delete_security_group(const std::string& id, const std::string& name);
  // Adds (authorize) or removes (revoke) rules; EC2's duplicate / not-found errors.
  Ec2Result<bool> change_ingress(const std::string& group_id, const std::string& group_name,
                                 const std::vector<SecurityRule>& rules, bool authorize);
  Ec2Result<SecurityGroup> resolve_group(const std::string& id, const std::string& name);
  // The forwards an instance should have now: its security groups' tcp/udp rules, from
  // its public address to the same port of the guest.
  std::vector<nlohmann::json> forwards_for(const InstanceRecord& inst);

  // --- placement groups (placement_groups.cpp)
  Ec2Result<PlacementGroup> create_placement_group(const std::string& name,
                                                   const std::string& strategy,
                                                   unsigned partition_count, const Tags& tags);
  Ec2Result<std::vector<PlacementGroup>> placement_groups();
  Ec2Result<bool> delete_placement_group(const std::string& name);

  // --- key pairs (key_pairs.cpp): only public keys are kept; the private key of a
  // created pair is returned once. EC2's errors: InvalidKeyPair.Duplicate, .NotFound,
  // .Format, InvalidParameterValue, MissingParameter.
  // type: "" (rsa) | rsa | ed25519; format: "" | pem (ppk is refused).
  Ec2Result<CreatedKeyPair> create_key_pair(const std::string& name, const std::string& type,
                                            const std::string& format, const Tags& tags);
  // public_key_material: the OpenSSH public key line (decoded from the wire's base64).
  Ec2Result<KeyPairRecord> import_key_pair(const std::string& name,
                                           const std::string& public_key_material,
                                           const Tags& tags);
  Ec2Result<std::vector<KeyPairRecord>> key_pairs();
  Ec2Result<KeyPairRecord> key_pair(const std::string& name);  // InvalidKeyPair.NotFound
  // By name, or by id when name is empty; returns the id deleted ("" when there was no
  // such pair, which is no error, as on EC2).
  Ec2Result<std::string> delete_key_pair(const std::string& name, const std::string& id);

  // --- tags (tags.cpp): instances, security groups, images, placement groups
  Ec2Result<bool> create_tags(const std::vector<std::string>& resources, const Tags& tags);
  Ec2Result<bool> delete_tags(
      const std::vector<std::string>& resources,
      const std::vector<std::pair<std::string, std::optional<std::string>>>& tags);

  // Wakes the reconciler (a change it must act on was committed).
  void kick();
  // Waits until kicked or `timeout`; for the reconciler.
  void wait_for_kick(std::chrono::milliseconds timeout);

  std::chrono::steady_clock::time_point now() const;

 private:
  // The hosts as the scheduler sees them. group_members is filled only when `with_groups`
  // (it reads every instance record; a launch without a placement group does not need it).
  Ec2Result<std::vector<HostCandidate>> candidates(
      std::map<std::string, std::pair<HostAllocation, int64_t>>& allocs,
      std::map<std::string, HostRecord>& records, bool with_groups);
  Ec2Result<Reservation> replay_token(const RunRequest& req);
  // The host an instance would move to: `wanted` ("" or "*": the scheduler's pick among
  // the other hosts of its zone), checked for room on the view read into allocs/records.
  Ec2Result<std::string> choose_move_target(
      const InstanceRecord& inst, const std::string& wanted,
      std::map<std::string, std::pair<HostAllocation, int64_t>>& allocs,
      std::map<std::string, HostRecord>& records);
  // The records of `ids`, or InvalidInstanceID.NotFound naming every id that has none.
  Ec2Result<std::vector<InstanceRecord>> find_all(const std::vector<std::string>& ids);
  Ec2Result<KeyPairRecord> put_new_key_pair(KeyPairRecord record);
  // --- shared liveness (liveness.cpp)
  Status start_liveness();
  // Lists /alive/ (replacing what is known), then watches it from the listed revision.
  Status watch_liveness();
  void liveness_loop();  // re-lists and re-watches after a watch error
  // Applies one /alive/ key's put (vms: its value) or delete at `revision`.
  void apply_alive(const std::string& host, bool alive, const std::string& value, int64_t revision);
  // A heartbeat's share: keeps the host's lease alive and (re)puts its key when needed.
  Status refresh_alive_key(const std::string& host, const nlohmann::json& vms);

  Store& store_;
  CloudOptions options_;
  Clock clock_;
  mutable std::mutex mu_;  // liveness_
  std::map<std::string, HostLiveness> liveness_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<bool> leader_{false};
  std::atomic<bool> shared_liveness_{false};
  struct HostLease {
    std::mutex mu;  // held across the store calls of one heartbeat of this host
    int64_t lease = 0, put_revision = 0;
    std::string value;  // what was last put
  };
  std::mutex lease_mu_;  // leases_ (the map; each entry has its own lock)
  std::map<std::string, std::unique_ptr<HostLease>> leases_;
  std::mutex watch_mu_;  // watch_, watch_failed_, stopping_
  std::condition_variable watch_cv_;
  std::unique_ptr<Watch> watch_;
  bool watch_failed_ = false, stopping_ = false;
  std::thread liveness_thread_;
  std::mutex kick_mu_;
  std::condition_variable kick_cv_;
  bool kicked_ = false;
};

// EC2-shaped ids: PREFIX-17 lower-case hex digits (i-, r-, sg-, ami-, pg-).
std::string new_id(std::string_view prefix);
bool is_id(std::string_view text, std::string_view prefix);
std::string iso_time_now();  // 2026-12-06T10:00:00.000Z
int64_t wall_ms_now();

}  // namespace nimbus::cloud
