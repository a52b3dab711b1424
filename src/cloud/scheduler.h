// Placement: which hosts take the instances of one launch (design/CLOUD-NOTES.md §4). Pure
// (no I/O, clock or store) so that the control plane and a simulator of 10,000 hosts run the
// very same code; each placement is one pass over the hosts.
//
// As Nova's filter scheduler:
//   1. Filters: the zone (when asked), alive, accepting (not draining), fits (vCPUs, memory
//      plus the host's per-VM overhead, disk), and the placement group's rule:
//        spread:    a host holding none of the group's instances, and at most 7 of them
//                   per zone (EC2's limit);
//        cluster:   a host already holding members if one fits, else a host in the zone
//                   holding the most members; with no members yet, any host;
//        partition: host H belongs to partition partition_of(H, N) (a stable hash of its
//                   id); each instance goes to the partition holding the fewest members
//                   among those with a host that fits (ties: the lowest number). Simple, and
//                   instances of two partitions never share a host.
//   2. Weigher: free memory fraction and free vCPU fraction of each candidate, each
//      normalised min-max over the candidates, summed, times +1 (spread) or -1 (pack). The
//      best wins; ties go to the smallest host id, so results are deterministic (unless
//      PlacementRequest::subset asks for a random one of the best few).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nimbus::cloud {

struct HostCandidate {
  std::string id, zone;
  bool alive = true, accepting = true;  // heartbeating; not draining
  uint64_t vcpus_capacity = 0;          // host CPUs x overcommit, as nimbusd reports
  uint64_t vcpus_allocated = 0;
  uint64_t memory_mib_capacity = 0, memory_mib_allocated = 0;  // allocated includes overhead
  uint64_t disk_mib_capacity = 0, disk_mib_allocated = 0;
  uint64_t vm_overhead_mib = 0;                   // added to each instance's memory here
  std::map<std::string, unsigned> group_members;  // placement group name -> its instances here
};

struct PlacementGroupInfo {
  std::string name, strategy;  // "cluster" | "spread" | "partition"
  unsigned partition_count = 0;
};

struct PlacementRequest {
  std::string zone;  // "" any zone of the region
  uint64_t vcpus = 1, memory_mib = 256, disk_mib = 0;
  std::optional<PlacementGroupInfo> group;
  std::string instance_type;  // for messages only
  // Without a group: choose uniformly among the `subset` best-weighed hosts that fit
  // (Nova's host_subset_size), drawn from `seed`. 1 (the default): the best, ties to the
  // smallest id. A launch that lost a race asks for more, so that launches racing on the
  // same view spread over several hosts instead of colliding on one again.
  unsigned subset = 1;
  uint64_t seed = 0;
};

enum class Strategy { kSpread, kPack };  // the weigher, chosen per cloud

// EC2's limit of a spread group's instances in one zone.
inline constexpr unsigned kSpreadPerZone = 7;

struct Placement {
  std::vector<std::string> hosts;  // one host id per placed instance, in order
  std::vector<size_t> slots;       // the same hosts: HostTable slots, or positions in the vector
  std::string shortage;            // why placing stopped; "" when all were placed
};

// The hosts as the scheduler keeps them between placements: the control plane builds one
// per launch (place(std::vector<HostCandidate>&) below); the simulator keeps one for a whole
// run and changes it as instances come and go. Slots are ordered by (zone, id), so that a
// zone is one contiguous range and each placement is one pass over it.
class HostTable {
 public:
  HostTable() = default;
  explicit HostTable(std::vector<HostCandidate> hosts);

  size_t size() const { return hosts_.size(); }
  const HostCandidate& host(size_t slot) const { return hosts_[slot]; }
  // The slot of host `id`, or size() when there is none.
  size_t slot_of(std::string_view id) const;
  // The position in the caller's vector this table was built from.
  size_t origin(size_t slot) const { return origin_[slot]; }

  void set_alive(size_t slot, bool alive);
  void set_accepting(size_t slot, bool accepting);
  // Takes back what placing an instance of (vcpus, memory_mib, disk_mib) in `group` ("" none)
  // on `slot` claimed: memory_mib plus the host's per-VM overhead. Never below zero.
  void release(size_t slot, uint64_t vcpus, uint64_t memory_mib, uint64_t disk_mib,
               const std::string& group = "");
  // Claims an instance on `slot` without choosing (a move whose target is already known).
  void claim(size_t slot, uint64_t vcpus, uint64_t memory_mib, uint64_t disk_mib,
             const std::string& group = "");

  // What the placer reads per slot, kept in step with hosts_ (refresh).
  struct Row {
    uint64_t room_mem;  // free memory less the per-VM overhead
    uint64_t free_vcpus, free_disk;
    double mem_frac, cpu_frac;  // the weigher's free fractions (0 for a capacity of 0)
    uint32_t zone;              // index into zone_names()
    uint32_t rank;              // position of the id in sorted order (ties: smallest id)
    bool open;                  // alive, accepting, and its free memory covers the overhead
  };
  const std::vector<Row>& rows() const { return rows_; }
  const std::vector<std::string>& zone_names() const { return zone_names_; }
  // Slots [first, second) of zone `z` (an index into zone_names()).
  std::pair<size_t, size_t> zone_range(uint32_t z) const { return zone_ranges_[z]; }
  HostCandidate& mutable_host(size_t slot) { return hosts_[slot]; }
  Row& mutable_row(size_t slot) { return rows_[slot]; }

 private:
  void refresh(size_t slot);
  std::vector<HostCandidate> hosts_;
  std::vector<Row> rows_;
  std::vector<size_t> origin_;
  std::vector<std::string> zone_names_;
  std::vector<std::pair<size_t, size_t>> zone_ranges_;
  std::vector<uint32_t> by_id_;  // slots in id order (by_id_[rank] == slot)
};

// Places `count` instances (the caller asks for MaxCount and accepts >= MinCount) and
// returns one host id per placed instance, updating `hosts` in place (allocations and group
// members) so that the caller can commit the claims. Fewer than `count` are placed when
// capacity runs out; `shortage` then says what was short, aggregated over the hosts.
Placement place(std::vector<HostCandidate>& hosts, const PlacementRequest& req, unsigned count,
                Strategy strategy);
// The same over a table kept between placements; Placement::slots says where they went.
Placement place(HostTable& hosts, const PlacementRequest& req, unsigned count, Strategy strategy);

// The partition of a partition group that host `host_id` belongs to: 1..partition_count,
// as EC2 numbers them (0 when partition_count is 0). Stable across runs and machines.
unsigned partition_of(std::string_view host_id, unsigned partition_count);

}  // namespace nimbus::cloud
