#include "cloud/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>

namespace nimbus::cloud {
namespace {

constexpr uint64_t kNone = std::numeric_limits<uint64_t>::max();

enum class GroupKind { kNone, kSpread, kCluster, kPartition };

// A candidate of the general (grouped or many-placement) path: a slot of the table that
// passed the static filters, with what the group's rule reads.
struct Cand {
  uint32_t slot;       // the HostTable slot
  uint32_t zone;       // index into the table's zone names
  uint32_t partition;  // 0-based partition (partition groups)
  uint32_t rank;       // position of the id in sorted order
  unsigned members;    // the group's instances on this host
};

using Row = HostTable::Row;

uint64_t free_of(uint64_t capacity, uint64_t allocated) {
  return allocated >= capacity ? 0 : capacity - allocated;
}

uint64_t memory_need(uint64_t overhead, uint64_t memory_mib) {
  return memory_mib > kNone - overhead ? kNone : memory_mib + overhead;
}

// The capacity filter: alive and accepting, the request's vCPUs, memory plus this host's
// per-VM overhead, and disk.
bool fits(const Row& r, const PlacementRequest& req) {
  return r.open && r.room_mem >= req.memory_mib && r.free_vcpus >= req.vcpus &&
         r.free_disk >= req.disk_mib;
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
std::string resource_reasons(const HostTable& hosts, const PlacementRequest& req,
                             std::string_view zone, size_t* fitting) {
  uint64_t down = 0, draining = 0, short_cpu = 0, short_mem = 0, short_disk = 0, in_zone = 0;
  uint64_t best_cpu = 0, best_mem = 0, best_disk = 0;
  *fitting = 0;
  for (size_t slot = 0; slot < hosts.size(); ++slot) {
    const HostCandidate& h = hosts.host(slot);
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
  Placer(HostTable& table, const PlacementRequest& req, unsigned count, Strategy strategy)
      : table_(table),
        rows_(table.rows()),
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
    out.slots.reserve(count_);
    for (unsigned i = 0; i < count_; ++i) {
      size_t slot = kNoHost, cand = kNoHost;
      if (scan_) {
        slot = choose_scan();
      } else {
        cand = kind_ == GroupKind::kNone ? choose_ungrouped() : choose();
        if (cand != kNoHost) slot = cands_[cand].slot;
      }
      if (slot == kNoHost) {
        out.shortage = shortage();
        break;
      }
      claim(slot, cand);
      out.hosts.push_back(table_.host(slot).id);
      out.slots.push_back(slot);
    }
    return out;
  }

 private:
  static constexpr size_t kNoHost = std::numeric_limits<size_t>::max();
  // Up to this many placements in a call (without a group or a subset), each is two passes
  // over the zone's slots, with nothing built per call: what the simulator's launches and
  // the control plane's usual RunInstances are. More, and the lazy heaps below pay off.
  static constexpr unsigned kScanMax = 16;

  // The group's kind, the slots to look at, the candidates. Returns why nothing can be
  // placed when the request itself is unplaceable ("" otherwise).
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
    // The zone asked for is one range of slots; a zone the table does not have, none.
    first_ = 0;
    last_ = table_.size();
    if (!req_.zone.empty()) {
      const auto& names = table_.zone_names();
      auto it = std::lower_bound(names.begin(), names.end(), req_.zone);
      if (it == names.end() || *it != req_.zone) {
        last_ = 0;
      } else {
        std::tie(first_, last_) = table_.zone_range(static_cast<uint32_t>(it - names.begin()));
      }
    }
    if (kind_ == GroupKind::kNone && count_ <= kScanMax && req_.subset <= 1) {
      scan_ = true;
      return "";
    }
    zone_members_.assign(table_.zone_names().size(), 0);
    if (kind_ == GroupKind::kPartition) partition_members_.assign(req_.group->partition_count, 0);
    if (req_.group) {
      // Members count towards their zone and partition wherever they are, also on hosts
      // that are down or draining (they still run there, as far as we know).
      for (size_t slot = 0; slot < table_.size(); ++slot) {
        const HostCandidate& h = table_.host(slot);
        auto it = h.group_members.find(req_.group->name);
        if (it == h.group_members.end() || it->second == 0) continue;
        zone_members_[rows_[slot].zone] += it->second;
        if (kind_ == GroupKind::kPartition)
          partition_members_[partition_of(h.id, req_.group->partition_count) - 1] += it->second;
      }
    }
    cands_.reserve(last_ - first_);
    for (size_t slot = first_; slot < last_; ++slot) {
      const Row& r = rows_[slot];
      if (!r.open) continue;  // takes nothing in this call (claims only shrink it)
      Cand c;
      c.slot = static_cast<uint32_t>(slot);
      c.zone = r.zone;
      c.rank = r.rank;
      c.partition = 0;
      c.members = 0;
      if (req_.group) {
        const HostCandidate& h = table_.host(slot);
        if (auto it = h.group_members.find(req_.group->name); it != h.group_members.end())
          c.members = it->second;
        if (kind_ == GroupKind::kPartition)
          c.partition = partition_of(h.id, req_.group->partition_count) - 1;
      }
      cands_.push_back(c);
    }
    classes_.resize(kind_ == GroupKind::kPartition ? req_.group->partition_count : 3);
    return "";
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

  // The weigher: Nova's normalisation (x - min) / (max - min) of both fractions (all equal
  // weighs 0), summed, times the strategy's sign. Every path weighs with this.
  struct Scale {
    double min_mem, mem_scale, min_cpu, cpu_scale;
  };
  static Scale scale_of(double min_mem, double max_mem, double min_cpu, double max_cpu) {
    return {min_mem, max_mem > min_mem ? 1.0 / (max_mem - min_mem) : 0.0, min_cpu,
            max_cpu > min_cpu ? 1.0 / (max_cpu - min_cpu) : 0.0};
  }
  double score(double mem, double cpu, const Scale& s) const {
    return multiplier_ * ((mem - s.min_mem) * s.mem_scale + (cpu - s.min_cpu) * s.cpu_scale);
  }

  // The few-placement path: pass 1 collects the ranges over the slots that fit, pass 2
  // weighs them; ties go to the smallest id (rank).
  size_t choose_scan() {
    // Branch-free: whether a host fits is data the CPU cannot predict.
    constexpr double kInf = std::numeric_limits<double>::infinity();
    // The slots that fit: one buffer per thread, so that a placement allocates nothing.
    static thread_local std::vector<uint32_t> scratch;
    if (scratch.size() < last_ - first_) scratch.resize(last_ - first_);
    uint32_t* fit = scratch.data();
    size_t n = 0;
    double min_mem = kInf, max_mem = -kInf, min_cpu = kInf, max_cpu = -kInf;
    const Row* rows = rows_.data();
    const uint64_t mem = req_.memory_mib, vcpus = req_.vcpus, disk = req_.disk_mib;
    for (size_t slot = first_; slot < last_; ++slot) {
      const Row& r = rows[slot];
      const bool ok =
          r.open & (r.room_mem >= mem) & (r.free_vcpus >= vcpus) & (r.free_disk >= disk);
      fit[n] = static_cast<uint32_t>(slot);
      n += ok;
      min_mem = std::min(min_mem, ok ? r.mem_frac : kInf);
      max_mem = std::max(max_mem, ok ? r.mem_frac : -kInf);
      min_cpu = std::min(min_cpu, ok ? r.cpu_frac : kInf);
      max_cpu = std::max(max_cpu, ok ? r.cpu_frac : -kInf);
    }
    if (n == 0) return kNoHost;
    const Scale s = scale_of(min_mem, max_mem, min_cpu, max_cpu);
    size_t best = fit[0];
    double best_score = score(rows[best].mem_frac, rows[best].cpu_frac, s);
    for (size_t k = 1; k < n; ++k) {
      const Row& r = rows[fit[k]];
      const double sc = score(r.mem_frac, r.cpu_frac, s);
      if (sc > best_score || (sc == best_score && r.rank < rows[best].rank)) {
        best = fit[k];
        best_score = sc;
      }
    }
    return best;
  }

  // One placement of the general path: filter and collect the ranges (pass 1), pick the
  // class, weigh (pass 2).
  size_t choose() {
    for (ClassStats& s : classes_) s.reset();
    const uint32_t anchor = kind_ == GroupKind::kCluster ? cluster_zone() : kNoZone;
    for (const Cand& c : cands_) {
      const Row& r = rows_[c.slot];
      if (!fits(r, req_)) continue;
      const int k = class_of(c, anchor);
      if (k < 0) continue;
      classes_[k].add(r.mem_frac, r.cpu_frac);
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

    const ClassStats& st = classes_[chosen];
    const Scale s = scale_of(st.min_mem, st.max_mem, st.min_cpu, st.max_cpu);
    size_t best = kNoHost;
    double best_score = 0;
    for (size_t i = 0; i < cands_.size(); ++i) {
      const Cand& c = cands_[i];
      const Row& r = rows_[c.slot];
      if (!fits(r, req_) || class_of(c, anchor) != chosen) continue;
      const double sc = score(r.mem_frac, r.cpu_frac, s);
      if (best == kNoHost || sc > best_score || (sc == best_score && c.rank < cands_[best].rank)) {
        best = i;
        best_score = sc;
      }
    }
    return best;
  }

  // Many placements without a group: one placement changes only the host it claims, the
  // others keep their fit and their weights. So the hosts that fit are kept in a list (a
  // host that stops fitting never fits again in this call), the ranges' ends in lazy heaps
  // (a changed or gone host's entries are dropped when they reach the top), and each
  // placement is one pass.
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
      const Row& r = rows_[cands_[i].slot];
      mem_[i] = r.mem_frac;
      cpu_[i] = r.cpu_frac;
      if (!fits(r, req_)) continue;
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
    const Scale s = scale_of(mem_range_.min(mem_, is_live_), mem_range_.max(mem_, is_live_),
                             cpu_range_.min(cpu_, is_live_), cpu_range_.max(cpu_, is_live_));
    if (req_.subset > 1 && live_.size() > 1) return choose_among_best(s);
    size_t best_pos = 0;
    uint32_t best = live_[0];
    double best_score = score(mem_[best], cpu_[best], s);
    for (size_t pos = 1; pos < live_.size(); ++pos) {
      const uint32_t i = live_[pos];
      const double sc = score(mem_[i], cpu_[i], s);
      if (sc > best_score || (sc == best_score && cands_[i].rank < cands_[best].rank)) {
        best = i;
        best_pos = pos;
        best_score = sc;
      }
    }
    best_pos_ = best_pos;
    return best;
  }

  // One of the req_.subset best (as choose_ungrouped orders them), uniformly at random.
  size_t choose_among_best(const Scale& s) {
    struct Scored {
      double score;
      size_t pos;
    };
    std::vector<Scored> scored;
    scored.reserve(live_.size());
    for (size_t pos = 0; pos < live_.size(); ++pos) {
      const uint32_t i = live_[pos];
      scored.push_back({score(mem_[i], cpu_[i], s), pos});
    }
    const size_t k = std::min<size_t>(req_.subset, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end(),
                      [&](const Scored& a, const Scored& b) {
                        if (a.score != b.score) return a.score > b.score;
                        return cands_[live_[a.pos]].rank < cands_[live_[b.pos]].rank;
                      });
    const size_t pick = std::uniform_int_distribution<size_t>(0, k - 1)(rng_);
    best_pos_ = scored[pick].pos;
    return live_[best_pos_];
  }

  // After a claim on the many-placement path: its new weights, or out of the list.
  void update_ungrouped(uint32_t i) {
    const Row& r = rows_[cands_[i].slot];
    mem_[i] = r.mem_frac;
    cpu_[i] = r.cpu_frac;
    if (fits(r, req_)) {
      mem_range_.push({mem_[i], i});
      cpu_range_.push({cpu_[i], i});
      return;
    }
    is_live_[i] = false;
    live_[best_pos_] = live_.back();
    live_.pop_back();
  }

  void claim(size_t slot, size_t cand) {
    const std::string no_group;
    table_.claim(slot, req_.vcpus, req_.memory_mib, req_.disk_mib,
                 req_.group ? req_.group->name : no_group);
    if (cand == kNoHost) return;  // the scan path keeps nothing of its own
    if (req_.group) {
      Cand& c = cands_[cand];
      ++c.members;
      ++zone_members_[c.zone];
      if (kind_ == GroupKind::kPartition) ++partition_members_[c.partition];
    }
    if (kind_ == GroupKind::kNone) update_ungrouped(static_cast<uint32_t>(cand));
  }

  // Why the next instance has no host: the group's rule when hosts that fit exist but the
  // rule excludes them all, else what the hosts are short of.
  std::string shortage() const {
    const std::string subject = req_.zone.empty() ? "no host" : "no host in zone " + req_.zone;
    const std::string what = describe_request(req_);
    size_t fitting = 0;
    const std::string reasons = resource_reasons(table_, req_, req_.zone, &fitting);
    if (fitting == 0 || !req_.group)
      return fmt::format("{} can take {}: {}", subject, what, reasons);

    const std::string label = group_label(*req_.group);
    const auto& zone_names = table_.zone_names();
    if (kind_ == GroupKind::kSpread) {
      // Hosts that fit: in a zone at the limit, or holding a member.
      std::vector<std::string> full_zones;
      size_t holding = 0;
      std::vector<bool> listed(zone_names.size(), false);
      for (const Cand& c : cands_) {
        if (!fits(rows_[c.slot], req_)) continue;
        if (zone_members_[c.zone] >= kSpreadPerZone) {
          if (!listed[c.zone]) full_zones.push_back(zone_names[c.zone]);
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
        const std::string& zone = zone_names[anchor];
        if (!req_.zone.empty() && req_.zone != zone)
          return fmt::format("{} has its instances in zone {}, not {}", label, zone, req_.zone);
        size_t in_zone_fitting = 0;
        const std::string zone_reasons = resource_reasons(table_, req_, zone, &in_zone_fitting);
        return fmt::format("{} has its instances in zone {}: no host there can take {}: {}", label,
                           zone, what, zone_reasons);
      }
    }
    return fmt::format("{} can take {}: {}", subject, what, reasons);
  }

  HostTable& table_;
  const std::vector<Row>& rows_;
  const PlacementRequest& req_;
  const unsigned count_;
  const double multiplier_;
  std::mt19937_64 rng_;  // req_.subset > 1 only
  GroupKind kind_ = GroupKind::kNone;
  size_t first_ = 0, last_ = 0;  // the slots of the zone asked for (all without one)
  bool scan_ = false;
  std::vector<unsigned> zone_members_;       // the group's instances per zone
  std::vector<unsigned> partition_members_;  // the group's instances per partition
  std::vector<Cand> cands_;
  std::vector<ClassStats> classes_;
  // The many-placement path's state.
  bool started_ = false;
  std::vector<double> mem_, cpu_;  // free fractions per candidate
  std::vector<bool> is_live_;      // fits (and so is in live_)
  std::vector<uint32_t> live_;     // the candidates that fit, in no particular order
  size_t best_pos_ = 0;            // live_ position of the last choice
  Extremes mem_range_, cpu_range_;
};

}  // namespace

HostTable::HostTable(std::vector<HostCandidate> hosts) {
  const size_t n = hosts.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (hosts[a].zone != hosts[b].zone) return hosts[a].zone < hosts[b].zone;
    return hosts[a].id < hosts[b].id;
  });
  hosts_.reserve(n);
  origin_ = order;
  for (size_t i : order) hosts_.push_back(std::move(hosts[i]));
  rows_.resize(n);
  for (size_t slot = 0; slot < n; ++slot) {
    if (zone_names_.empty() || zone_names_.back() != hosts_[slot].zone) {
      if (!zone_ranges_.empty()) zone_ranges_.back().second = slot;
      zone_names_.push_back(hosts_[slot].zone);
      zone_ranges_.push_back({slot, n});
    }
    rows_[slot].zone = static_cast<uint32_t>(zone_names_.size() - 1);
    refresh(slot);
  }
  by_id_.resize(n);
  std::iota(by_id_.begin(), by_id_.end(), uint32_t{0});
  std::sort(by_id_.begin(), by_id_.end(),
            [&](uint32_t a, uint32_t b) { return hosts_[a].id < hosts_[b].id; });
  for (uint32_t r = 0; r < n; ++r) rows_[by_id_[r]].rank = r;
}

size_t HostTable::slot_of(std::string_view id) const {
  auto it =
      std::lower_bound(by_id_.begin(), by_id_.end(), id,
                       [&](uint32_t slot, std::string_view v) { return hosts_[slot].id < v; });
  return it != by_id_.end() && hosts_[*it].id == id ? *it : size();
}

void HostTable::refresh(size_t slot) {
  const HostCandidate& h = hosts_[slot];
  Row& r = rows_[slot];
  const uint64_t free_mem = free_of(h.memory_mib_capacity, h.memory_mib_allocated);
  r.room_mem = free_of(free_mem, h.vm_overhead_mib);
  r.free_vcpus = free_of(h.vcpus_capacity, h.vcpus_allocated);
  r.free_disk = free_of(h.disk_mib_capacity, h.disk_mib_allocated);
  r.mem_frac = h.memory_mib_capacity ? static_cast<double>(free_mem) *
                                           (1.0 / static_cast<double>(h.memory_mib_capacity))
                                     : 0.0;
  r.cpu_frac = h.vcpus_capacity ? static_cast<double>(r.free_vcpus) *
                                      (1.0 / static_cast<double>(h.vcpus_capacity))
                                : 0.0;
  r.open = h.alive && h.accepting && free_mem >= h.vm_overhead_mib;
}

void HostTable::set_alive(size_t slot, bool alive) {
  hosts_[slot].alive = alive;
  refresh(slot);
}

void HostTable::set_accepting(size_t slot, bool accepting) {
  hosts_[slot].accepting = accepting;
  refresh(slot);
}

void HostTable::claim(size_t slot, uint64_t vcpus, uint64_t memory_mib, uint64_t disk_mib,
                      const std::string& group) {
  HostCandidate& h = hosts_[slot];
  const uint64_t need = memory_need(h.vm_overhead_mib, memory_mib);
  h.vcpus_allocated += vcpus;
  h.memory_mib_allocated += need == kNone ? memory_mib : need;
  h.disk_mib_allocated += disk_mib;
  if (!group.empty()) ++h.group_members[group];
  refresh(slot);
}

void HostTable::release(size_t slot, uint64_t vcpus, uint64_t memory_mib, uint64_t disk_mib,
                        const std::string& group) {
  HostCandidate& h = hosts_[slot];
  const uint64_t need = memory_need(h.vm_overhead_mib, memory_mib);
  h.vcpus_allocated -= std::min(h.vcpus_allocated, vcpus);
  h.memory_mib_allocated -= std::min(h.memory_mib_allocated, need == kNone ? memory_mib : need);
  h.disk_mib_allocated -= std::min(h.disk_mib_allocated, disk_mib);
  if (!group.empty()) {
    if (auto it = h.group_members.find(group); it != h.group_members.end()) {
      if (--it->second == 0) h.group_members.erase(it);
    }
  }
  refresh(slot);
}

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

Placement place(HostTable& hosts, const PlacementRequest& req, unsigned count, Strategy strategy) {
  return Placer(hosts, req, count, strategy).run();
}

Placement place(std::vector<HostCandidate>& hosts, const PlacementRequest& req, unsigned count,
                Strategy strategy) {
  HostTable table(hosts);
  Placement out = place(table, req, count, strategy);
  for (size_t& slot : out.slots) {
    hosts[table.origin(slot)] = table.host(slot);
    slot = table.origin(slot);
  }
  return out;
}

}  // namespace nimbus::cloud
