#include "cloud/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

namespace nimbus::cloud {
namespace {

constexpr uint64_t kNone = std::numeric_limits<uint64_t>::max();

enum class GroupKind { kNone, kSpread, kCluster, kPartition };

// One host that passed the static filters (zone, alive, accepting), with what the loop
// reads copied out of HostCandidate: a compact array is what makes a pass over 10,000
// hosts cheap.
struct Cand {
  uint64_t free_vcpus, free_mem, free_disk;
  uint64_t need_mem;          // the instance's memory plus this host's overhead; kNone: overflows
  double inv_vcpus, inv_mem;  // 1/capacity, 0 for a capacity of 0
  uint32_t host;              // index into hosts
  uint32_t zone;              // index into the sorted zone names
  uint32_t partition;         // 0-based partition (partition groups)
  uint32_t rank = 0;          // position of the id in sorted order (many-placement calls)
  unsigned members;           // the group's instances on this host
};

uint64_t free_of(uint64_t capacity, uint64_t allocated) {
  return allocated >= capacity ? 0 : capacity - allocated;
}

uint64_t memory_need(const HostCandidate& h, uint64_t memory_mib) {
  return memory_mib > kNone - h.vm_overhead_mib ? kNone : memory_mib + h.vm_overhead_mib;
}

bool fits(const Cand& c, const PlacementRequest& req) {
  return c.need_mem != kNone && c.free_vcpus >= req.vcpus && c.free_mem >= c.need_mem &&
         c.free_disk >= req.disk_mib;
}

std::string plural(uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// "a t3.large (2 vCPUs, 8192 MiB)", "an n1.tiny (1 vCPU, 128 MiB)", "an instance of ...".
std::string describe_request(const PlacementRequest& req) {
  std::string shape = fmt::format("{}, {} MiB", plural(req.vcpus, "vCPU", "vCPUs"), req.memory_mib);
  if (req.disk_mib > 0) shape += fmt::format(", {} MiB disk", req.disk_mib);
  if (req.instance_type.empty()) return fmt::format("an instance of {}", shape);
  // "an" before a letter whose name starts with a vowel sound (an m1, an n1, a t3).
  const bool an = std::string_view("aefhilmnorsx").find(req.instance_type[0]) != std::string::npos;
  return fmt::format("{} {} ({})", an ? "an" : "a", req.instance_type, shape);
}

std::string group_label(const PlacementGroupInfo& g) {
  return fmt::format("placement group '{}' ({})", g.name, g.strategy);
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// Why the hosts of `zone` ("" every zone) cannot take the instance, counted over hosts:
// "1 host down, 2 hosts short of memory (most free: 4032 MiB)". A host short of several
// resources counts under each. `fitting` receives the number of hosts that could take it.
std::string resource_reasons(const std::vector<HostCandidate>& hosts, const PlacementRequest& req,
                             std::string_view zone, size_t* fitting) {
  uint64_t down = 0, draining = 0, short_cpu = 0, short_mem = 0, short_disk = 0, in_zone = 0;
  uint64_t best_cpu = 0, best_mem = 0, best_disk = 0;
  *fitting = 0;
  for (const HostCandidate& h : hosts) {
    if (!zone.empty() && h.zone != zone) continue;
    ++in_zone;
    if (!h.alive) {
      ++down;
      continue;
    }
    if (!h.accepting) {
      ++draining;
      continue;
    }
    const uint64_t cpu = free_of(h.vcpus_capacity, h.vcpus_allocated);
    const uint64_t mem =
        free_of(free_of(h.memory_mib_capacity, h.memory_mib_allocated), h.vm_overhead_mib);
    const uint64_t disk = free_of(h.disk_mib_capacity, h.disk_mib_allocated);
    bool fit = true;
    if (cpu < req.vcpus) {
      ++short_cpu;
      best_cpu = std::max(best_cpu, cpu);
      fit = false;
    }
    if (mem < req.memory_mib) {
      ++short_mem;
      best_mem = std::max(best_mem, mem);
      fit = false;
    }
    if (disk < req.disk_mib) {
      ++short_disk;
      best_disk = std::max(best_disk, disk);
      fit = false;
    }
    if (fit) ++*fitting;
  }
  std::vector<std::string> parts;
  if (in_zone == 0) return zone.empty() ? "there are no hosts" : "the zone has no hosts";
  if (down) parts.push_back(plural(down, "host", "hosts") + " down");
  if (draining) parts.push_back(plural(draining, "host", "hosts") + " draining");
  if (short_cpu)
    parts.push_back(fmt::format("{} short of vCPUs (most free: {})",
                                plural(short_cpu, "host", "hosts"), best_cpu));
  if (short_mem)
    parts.push_back(fmt::format("{} short of memory (most free: {} MiB)",
                                plural(short_mem, "host", "hosts"), best_mem));
  if (short_disk)
    parts.push_back(fmt::format("{} short of disk (most free: {} MiB)",
                                plural(short_disk, "host", "hosts"), best_disk));
  return join(parts, ", ");
}

// Per class of candidates (cluster: tier; partition: partition; else one class), the
// ranges the weigher normalises over.
struct ClassStats {
  double min_mem, max_mem, min_cpu, max_cpu;
  size_t count;
  void reset() {
    min_mem = min_cpu = std::numeric_limits<double>::infinity();
    max_mem = max_cpu = -std::numeric_limits<double>::infinity();
    count = 0;
  }
  void add(double mem, double cpu) {
    min_mem = std::min(min_mem, mem);
    max_mem = std::max(max_mem, mem);
    min_cpu = std::min(min_cpu, cpu);
    max_cpu = std::max(max_cpu, cpu);
    ++count;
  }
};

class Placer {
 public:
  Placer(std::vector<HostCandidate>& hosts, const PlacementRequest& req, unsigned count,
         Strategy strategy)
      : hosts_(hosts),
        req_(req),
        count_(count),
        multiplier_(strategy == Strategy::kPack ? -1 : 1),
        rng_(req.seed) {}

  Placement run() {
    Placement out;
    if (count_ == 0) return out;
    if (std::string why = setup(); !why.empty()) {
      out.shortage = why;
      return out;
    }
    out.hosts.reserve(count_);
    for (unsigned i = 0; i < count_; ++i) {
      const size_t best = kind_ == GroupKind::kNone ? choose_ungrouped() : choose();
      if (best == kNoHost) {
        out.shortage = shortage();
        break;
      }
      claim(best);
      out.hosts.push_back(hosts_[cands_[best].host].id);
    }
    return out;
  }

 private:
  static constexpr size_t kNoHost = std::numeric_limits<size_t>::max();

  // The group's kind, the zones, the candidates. Returns why nothing can be placed when the
  // request itself is unplaceable ("" otherwise).
  std::string setup() {
    if (req_.group) {
      const PlacementGroupInfo& g = *req_.group;
      if (g.strategy == "spread") {
        kind_ = GroupKind::kSpread;
      } else if (g.strategy == "cluster") {
        kind_ = GroupKind::kCluster;
      } else if (g.strategy == "partition") {
        kind_ = GroupKind::kPartition;
        if (g.partition_count == 0) return fmt::format("{} has no partitions", group_label(g));
      } else {
        return fmt::format("placement group '{}' has an unknown strategy '{}'", g.name, g.strategy);
      }
    }
    // Zones by name, so that ties between zones go the same way every time.
    for (const HostCandidate& h : hosts_) zone_names_.push_back(h.zone);
    std::sort(zone_names_.begin(), zone_names_.end());
    zone_names_.erase(std::unique(zone_names_.begin(), zone_names_.end()), zone_names_.end());
    zone_members_.assign(zone_names_.size(), 0);
    if (kind_ == GroupKind::kPartition) partition_members_.assign(req_.group->partition_count, 0);

    cands_.reserve(hosts_.size());
    for (size_t i = 0; i < hosts_.size(); ++i) {
      const HostCandidate& h = hosts_[i];
      const uint32_t zone = zone_index(h.zone);
      unsigned members = 0;
      uint32_t partition = 0;
      if (req_.group) {
        if (auto it = h.group_members.find(req_.group->name); it != h.group_members.end())
          members = it->second;
        // Members count towards their zone and partition wherever they are, also on hosts
        // that are down or draining (they still run there, as far as we know).
        zone_members_[zone] += members;
        if (kind_ == GroupKind::kPartition) {
          partition = partition_of(h.id, req_.group->partition_count) - 1;
          partition_members_[partition] += members;
        }
      }
      if (!req_.zone.empty() && h.zone != req_.zone) continue;
      if (!h.alive || !h.accepting) continue;
      Cand c;
      c.free_vcpus = free_of(h.vcpus_capacity, h.vcpus_allocated);
      c.free_mem = free_of(h.memory_mib_capacity, h.memory_mib_allocated);
      c.free_disk = free_of(h.disk_mib_capacity, h.disk_mib_allocated);
      c.need_mem = memory_need(h, req_.memory_mib);
      c.inv_vcpus = h.vcpus_capacity ? 1.0 / static_cast<double>(h.vcpus_capacity) : 0.0;
      c.inv_mem = h.memory_mib_capacity ? 1.0 / static_cast<double>(h.memory_mib_capacity) : 0.0;
      c.host = static_cast<uint32_t>(i);
      c.zone = zone;
      c.partition = partition;
      c.members = members;
      cands_.push_back(c);
    }
    // Ties go to the smallest id. With many placements in one call, sorting once beats
    // comparing strings on every tie of every pass.
    if (count_ > 16) {
      std::vector<uint32_t> order(cands_.size());
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
        return hosts_[cands_[a].host].id < hosts_[cands_[b].host].id;
      });
      for (uint32_t r = 0; r < order.size(); ++r) cands_[order[r]].rank = r;
      use_rank_ = true;
    }
    classes_.resize(kind_ == GroupKind::kPartition ? req_.group->partition_count : 3);
    return "";
  }

  uint32_t zone_index(const std::string& zone) const {
    return static_cast<uint32_t>(std::lower_bound(zone_names_.begin(), zone_names_.end(), zone) -
                                 zone_names_.begin());
  }

  // Cluster: the zone holding the most members (ties: the first by name); kNoZone if none.
  static constexpr uint32_t kNoZone = std::numeric_limits<uint32_t>::max();
  uint32_t cluster_zone() const {
    uint32_t best = kNoZone;
    for (uint32_t z = 0; z < zone_members_.size(); ++z) {
      if (zone_members_[z] > 0 && (best == kNoZone || zone_members_[z] > zone_members_[best]))
        best = z;
    }
    return best;
  }

  // The candidate's class for this round, or -1 when the group's rule excludes it.
  int class_of(const Cand& c, uint32_t anchor_zone) const {
    switch (kind_) {
      case GroupKind::kNone:
        return 0;
      case GroupKind::kSpread:
        return c.members == 0 && zone_members_[c.zone] < kSpreadPerZone ? 0 : -1;
      case GroupKind::kCluster:
        // Tier 2: holds members; 1: in their zone; 0: anywhere, only while there are none.
        if (c.members > 0) return 2;
        if (anchor_zone == kNoZone) return 0;
        return c.zone == anchor_zone ? 1 : -1;
      case GroupKind::kPartition:
        return static_cast<int>(c.partition);
    }
    return -1;
  }

  bool before(const Cand& a, const Cand& b) const {
    return use_rank_ ? a.rank < b.rank : hosts_[a.host].id < hosts_[b.host].id;
  }

  // One placement: filter and collect the ranges (pass 1), pick the class, weigh (pass 2).
  size_t choose() {
    for (ClassStats& s : classes_) s.reset();
    const uint32_t anchor = kind_ == GroupKind::kCluster ? cluster_zone() : kNoZone;
    for (const Cand& c : cands_) {
      if (!fits(c, req_)) continue;
      const int k = class_of(c, anchor);
      if (k < 0) continue;
      classes_[k].add(static_cast<double>(c.free_mem) * c.inv_mem,
                      static_cast<double>(c.free_vcpus) * c.inv_vcpus);
    }
    int chosen = -1;
    if (kind_ == GroupKind::kCluster) {
      for (int k = 2; k >= 0 && chosen < 0; --k) {
        if (classes_[k].count > 0) chosen = k;
      }
    } else if (kind_ == GroupKind::kPartition) {
      // The partition with the fewest members among those with a host that fits.
      for (size_t k = 0; k < classes_.size(); ++k) {
        if (classes_[k].count > 0 &&
            (chosen < 0 || partition_members_[k] < partition_members_[chosen]))
          chosen = static_cast<int>(k);
      }
    } else if (classes_[0].count > 0) {
      chosen = 0;
    }
    if (chosen < 0) return kNoHost;

    const ClassStats& s = classes_[chosen];
    // Nova's normalisation: (x - min) / (max - min); all equal weighs 0.
    const double mem_scale = s.max_mem > s.min_mem ? 1.0 / (s.max_mem - s.min_mem) : 0.0;
    const double cpu_scale = s.max_cpu > s.min_cpu ? 1.0 / (s.max_cpu - s.min_cpu) : 0.0;
    size_t best = kNoHost;
    double best_score = 0;
    for (size_t i = 0; i < cands_.size(); ++i) {
      const Cand& c = cands_[i];
      if (!fits(c, req_) || class_of(c, anchor) != chosen) continue;
      const double mem = (static_cast<double>(c.free_mem) * c.inv_mem - s.min_mem) * mem_scale;
      const double cpu = (static_cast<double>(c.free_vcpus) * c.inv_vcpus - s.min_cpu) * cpu_scale;
      const double score = multiplier_ * (mem + cpu);
      if (best == kNoHost || score > best_score ||
          (score == best_score && before(c, cands_[best]))) {
        best = i;
        best_score = score;
      }
    }
    return best;
  }

  // Without a group, one placement changes only the host it claims: the others keep their
  // fit and their weights. So the hosts that fit are kept in a list (a host that stops
  // fitting never fits again in this call), the ranges' ends in lazy heaps (a changed or
  // gone host's entries are dropped when they reach the top), and each placement is one
  // pass, with the same arithmetic as choose() so both weigh alike.
  struct Entry {
    double value;
    uint32_t cand;
  };
  struct Extremes {
    std::vector<Entry> max_heap, min_heap;
    static bool less(const Entry& a, const Entry& b) { return a.value < b.value; }
    static bool greater(const Entry& a, const Entry& b) { return a.value > b.value; }
    void build(std::vector<Entry> entries) {
      min_heap = entries;
      max_heap = std::move(entries);
      std::make_heap(max_heap.begin(), max_heap.end(), less);
      std::make_heap(min_heap.begin(), min_heap.end(), greater);
    }
    void push(Entry e) {
      max_heap.push_back(e);
      std::push_heap(max_heap.begin(), max_heap.end(), less);
      min_heap.push_back(e);
      std::push_heap(min_heap.begin(), min_heap.end(), greater);
    }
    // The top of a heap after dropping entries that no longer hold (current[c] != value).
    template <typename Cmp>
    static double top(std::vector<Entry>& heap, const std::vector<double>& current,
                      const std::vector<bool>& live, Cmp cmp) {
      while (!live[heap.front().cand] || current[heap.front().cand] != heap.front().value) {
        std::pop_heap(heap.begin(), heap.end(), cmp);
        heap.pop_back();
      }
      return heap.front().value;
    }
    double max(const std::vector<double>& cur, const std::vector<bool>& live) {
      return top(max_heap, cur, live, less);
    }
    double min(const std::vector<double>& cur, const std::vector<bool>& live) {
      return top(min_heap, cur, live, greater);
    }
  };

  void start_ungrouped() {
    started_ = true;
    mem_.resize(cands_.size());
    cpu_.resize(cands_.size());
    is_live_.assign(cands_.size(), false);
    std::vector<Entry> mem_entries, cpu_entries;
    for (uint32_t i = 0; i < cands_.size(); ++i) {
      const Cand& c = cands_[i];
      mem_[i] = static_cast<double>(c.free_mem) * c.inv_mem;
      cpu_[i] = static_cast<double>(c.free_vcpus) * c.inv_vcpus;
      if (!fits(c, req_)) continue;
      is_live_[i] = true;
      live_.push_back(i);
      mem_entries.push_back({mem_[i], i});
      cpu_entries.push_back({cpu_[i], i});
    }
    mem_range_.build(std::move(mem_entries));
    cpu_range_.build(std::move(cpu_entries));
  }

  size_t choose_ungrouped() {
    if (!started_) start_ungrouped();
    if (live_.empty()) return kNoHost;
    const double min_mem = mem_range_.min(mem_, is_live_), max_mem = mem_range_.max(mem_, is_live_);
    const double min_cpu = cpu_range_.min(cpu_, is_live_), max_cpu = cpu_range_.max(cpu_, is_live_);
    const double mem_scale = max_mem > min_mem ? 1.0 / (max_mem - min_mem) : 0.0;
    const double cpu_scale = max_cpu > min_cpu ? 1.0 / (max_cpu - min_cpu) : 0.0;
    size_t best_pos = 0;
    uint32_t best = live_[0];
    double best_score =
        multiplier_ * ((mem_[best] - min_mem) * mem_scale + (cpu_[best] - min_cpu) * cpu_scale);
    for (size_t pos = 1; pos < live_.size(); ++pos) {
      const uint32_t i = live_[pos];
      const double score =
          multiplier_ * ((mem_[i] - min_mem) * mem_scale + (cpu_[i] - min_cpu) * cpu_scale);
      if (score > best_score || (score == best_score && before(cands_[i], cands_[best]))) {
        best = i;
        best_pos = pos;
        best_score = score;
      }
    }
    if (req_.subset > 1 && live_.size() > 1)
      return choose_among_best(min_mem, mem_scale, min_cpu, cpu_scale);
    best_pos_ = best_pos;
    return best;
  }

  // One of the req_.subset best (as choose_ungrouped orders them), uniformly at random.
  size_t choose_among_best(double min_mem, double mem_scale, double min_cpu, double cpu_scale) {
    struct Scored {
      double score;
      size_t pos;
    };
    std::vector<Scored> scored;
    scored.reserve(live_.size());
    for (size_t pos = 0; pos < live_.size(); ++pos) {
      const uint32_t i = live_[pos];
      scored.push_back(
          {multiplier_ * ((mem_[i] - min_mem) * mem_scale + (cpu_[i] - min_cpu) * cpu_scale), pos});
    }
    const size_t k = std::min<size_t>(req_.subset, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end(),
                      [&](const Scored& a, const Scored& b) {
                        if (a.score != b.score) return a.score > b.score;
                        return before(cands_[live_[a.pos]], cands_[live_[b.pos]]);
                      });
    const size_t pick = std::uniform_int_distribution<size_t>(0, k - 1)(rng_);
    best_pos_ = scored[pick].pos;
    return live_[best_pos_];
  }

  // After claim(i) on the ungrouped path: its new weights, or out of the list.
  void update_ungrouped(uint32_t i) {
    const Cand& c = cands_[i];
    mem_[i] = static_cast<double>(c.free_mem) * c.inv_mem;
    cpu_[i] = static_cast<double>(c.free_vcpus) * c.inv_vcpus;
    if (fits(c, req_)) {
      mem_range_.push({mem_[i], i});
      cpu_range_.push({cpu_[i], i});
      return;
    }
    is_live_[i] = false;
    live_[best_pos_] = live_.back();
    live_.pop_back();
  }

  void claim(size_t i) {
    Cand& c = cands_[i];
    HostCandidate& h = hosts_[c.host];
    c.free_vcpus -= req_.vcpus;
    c.free_mem -= c.need_mem;
    c.free_disk -= req_.disk_mib;
    h.vcpus_allocated += req_.vcpus;
    h.memory_mib_allocated += c.need_mem;
    h.disk_mib_allocated += req_.disk_mib;
    if (req_.group) {
      ++c.members;
      ++h.group_members[req_.group->name];
      ++zone_members_[c.zone];
      if (kind_ == GroupKind::kPartition) ++partition_members_[c.partition];
    }
    if (kind_ == GroupKind::kNone) update_ungrouped(static_cast<uint32_t>(i));
  }

  // Why the next instance has no host: the group's rule when hosts that fit exist but the
  // rule excludes them all, else what the hosts are short of.
  std::string shortage() const {
    const std::string subject = req_.zone.empty() ? "no host" : "no host in zone " + req_.zone;
    const std::string what = describe_request(req_);
    size_t fitting = 0;
    const std::string reasons = resource_reasons(hosts_, req_, req_.zone, &fitting);
    if (fitting == 0 || !req_.group)
      return fmt::format("{} can take {}: {}", subject, what, reasons);

    const std::string label = group_label(*req_.group);
    if (kind_ == GroupKind::kSpread) {
      // Hosts that fit: in a zone at the limit, or holding a member.
      std::vector<std::string> full_zones;
      size_t holding = 0;
      std::vector<bool> listed(zone_names_.size(), false);
      for (const Cand& c : cands_) {
        if (!fits(c, req_)) continue;
        if (zone_members_[c.zone] >= kSpreadPerZone) {
          if (!listed[c.zone]) full_zones.push_back(zone_names_[c.zone]);
          listed[c.zone] = true;
        } else if (c.members > 0) {
          ++holding;
        }
      }
      std::sort(full_zones.begin(), full_zones.end());
      std::vector<std::string> parts;
      if (!full_zones.empty())
        parts.push_back(
            fmt::format("already has {} instances in {}", kSpreadPerZone, join(full_zones, ", ")));
      if (holding > 0)
        parts.push_back(fmt::format(
            "already has an instance on {} that can take {}",
            holding == 1 ? "the 1 host" : fmt::format("each of the {} hosts", holding), what));
      return fmt::format("{} {}", label, join(parts, " and "));
    }
    if (kind_ == GroupKind::kCluster) {
      const uint32_t anchor = cluster_zone();
      if (anchor != kNoZone) {
        const std::string& zone = zone_names_[anchor];
        if (!req_.zone.empty() && req_.zone != zone)
          return fmt::format("{} has its instances in zone {}, not {}", label, zone, req_.zone);
        size_t in_zone_fitting = 0;
        const std::string zone_reasons = resource_reasons(hosts_, req_, zone, &in_zone_fitting);
        return fmt::format("{} has its instances in zone {}: no host there can take {}: {}", label,
                           zone, what, zone_reasons);
      }
    }
    return fmt::format("{} can take {}: {}", subject, what, reasons);
  }

  std::vector<HostCandidate>& hosts_;
  const PlacementRequest& req_;
  const unsigned count_;
  const double multiplier_;
  std::mt19937_64 rng_;  // req_.subset > 1 only
  GroupKind kind_ = GroupKind::kNone;
  std::vector<std::string> zone_names_;
  std::vector<unsigned> zone_members_;       // the group's instances per zone
  std::vector<unsigned> partition_members_;  // the group's instances per partition
  std::vector<Cand> cands_;
  std::vector<ClassStats> classes_;
  bool use_rank_ = false;
  // The ungrouped path's state.
  bool started_ = false;
  std::vector<double> mem_, cpu_;  // free fractions per candidate
  std::vector<bool> is_live_;      // fits (and so is in live_)
  std::vector<uint32_t> live_;     // the candidates that fit, in no particular order
  size_t best_pos_ = 0;            // live_ position of the last choice
  Extremes mem_range_, cpu_range_;
};

}  // namespace

unsigned partition_of(std::string_view host_id, unsigned partition_count) {
  if (partition_count == 0) return 0;
  // FNV-1a (64-bit): stable everywhere, unlike std::hash.
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : host_id) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return static_cast<unsigned>(h % partition_count) + 1;
}

Placement place(std::vector<HostCandidate>& hosts, const PlacementRequest& req, unsigned count,
                Strategy strategy) {
  return Placer(hosts, req, count, strategy).run();
}

}  // namespace nimbus::cloud
