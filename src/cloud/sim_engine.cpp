#include "cloud/sim_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "cloud/scheduler.h"

namespace nimbus::cloud::sim {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
// A disk of 0 MiB in the data center means "not a constraint": a capacity nothing reaches,
// with room left so that sums cannot overflow.
constexpr uint64_t kUnconstrainedDisk = uint64_t{1} << 60;
// More samples than this is a mistake in the options, not a run anyone can plot.
constexpr double kMaxSamples = 10'000'000;

// A host's physical side, by its position in the data center (HostTable::origin).
struct HostPower {
  unsigned cpus;
  double peak_watts, idle_fraction;
};

// An instance as its launch event gave it, resolved once.
struct InstanceSpec {
  uint64_t memory_mib, disk_mib;
  unsigned vcpus;
  uint32_t launch_event;  // index into Workload::events (its zone, group, type strings)
};

// An event as the runs read it: the dense instance number instead of its id.
struct Step {
  uint32_t instance;
  EventKind kind;
  bool skip;  // a util event after the instance's end: nothing to do
};

// What every policy's run shares: checked and resolved once per simulate().
struct Prepared {
  std::vector<HostCandidate> hosts;  // data center order
  std::vector<HostPower> power;      // the same order
  std::vector<InstanceSpec> instances;
  std::vector<Step> steps;  // one per workload event
  // Capacities sorted largest first, as prefix sums (the lower bound).
  std::vector<uint64_t> vcpu_prefix, memory_prefix;
  double duration_s = 0;
};

uint64_t floor_capacity(double amount, double overcommit) {
  const double v = std::floor(amount * overcommit);
  if (!(v > 0)) return 0;
  if (v >= 9.0e18) return uint64_t{1} << 62;
  return static_cast<uint64_t>(v);
}

Status build_hosts(const DataCenter& dc, Prepared& p) {
  std::unordered_set<std::string> seen;
  for (const Zone& z : dc.zones) {
    for (const HostShape& s : z.hosts) {
      if (!s.ids.empty() && s.ids.size() != s.count)
        return Status::invalid_argument(
            fmt::format("zone '{}' shape '{}': {} ids for a count of {}", z.name, s.name,
                        s.ids.size(), s.count));
      const size_t width = std::to_string(s.count).size();
      for (unsigned n = 1; n <= s.count; ++n) {
        HostCandidate h;
        h.id = s.ids.empty() ? fmt::format("{}-{}-{:0{}}", z.name, s.name, n, width) : s.ids[n - 1];
        if (!seen.insert(h.id).second)
          return Status::invalid_argument(fmt::format(
              "zone '{}' shape '{}': host id '{}' is not unique", z.name, s.name, h.id));
        h.zone = z.name;
        h.vcpus_capacity = floor_capacity(s.cpus, s.cpu_overcommit);
        h.memory_mib_capacity =
            floor_capacity(static_cast<double>(s.memory_mib), s.memory_overcommit);
        h.disk_mib_capacity = s.disk_mib == 0 ? kUnconstrainedDisk : s.disk_mib;
        h.vm_overhead_mib = s.vm_overhead_mib;
        p.hosts.push_back(std::move(h));
        p.power.push_back({s.cpus, s.peak_watts, s.idle_fraction});
      }
    }
  }
  auto prefix = [&](auto capacity) {
    std::vector<uint64_t> caps;
    caps.reserve(p.hosts.size());
    for (const HostCandidate& h : p.hosts) caps.push_back(capacity(h));
    std::sort(caps.rbegin(), caps.rend());
    for (size_t i = 1; i < caps.size(); ++i) caps[i] += caps[i - 1];
    return caps;
  };
  p.vcpu_prefix = prefix([](const HostCandidate& h) { return h.vcpus_capacity; });
  p.memory_prefix = prefix([](const HostCandidate& h) { return h.memory_mib_capacity; });
  return {};
}

// The workload, checked once before any policy runs; instance ids become dense numbers.
Status build_steps(const DataCenter& dc, const Workload& w, const std::vector<InstanceType>& types,
                   Prepared& p) {
  std::unordered_set<std::string_view> zones;
  for (const Zone& z : dc.zones) zones.insert(z.name);
  std::unordered_map<std::string_view, uint32_t> ids;
  ids.reserve(w.events.size() / 2 + 16);
  std::vector<uint8_t> ended;  // per instance: terminated
  p.steps.reserve(w.events.size());
  double last = 0;
  for (size_t i = 0; i < w.events.size(); ++i) {
    const Event& e = w.events[i];
    auto bad = [&](std::string_view why) {
      return Status::invalid_argument(
          fmt::format("event {} (instance '{}'): {}", i, e.instance, why));
    };
    if (!std::isfinite(e.time_s) || e.time_s < 0) return bad("time is not a finite time >= 0");
    if (e.time_s < last)
      return bad(fmt::format("time {} is before the previous event's {}", e.time_s, last));
    last = e.time_s;
    if (e.instance.empty()) return bad("no instance id");
    if (!(e.cpu >= 0 && e.cpu <= 1)) return bad(fmt::format("cpu {} is not in [0, 1]", e.cpu));
    Step step{kNone, e.kind, false};
    auto it = ids.find(e.instance);
    switch (e.kind) {
      case EventKind::kLaunch: {
        if (it != ids.end()) return bad("launched twice");
        InstanceSpec spec{e.memory_mib, e.disk_mib, e.vcpus, static_cast<uint32_t>(i)};
        if (e.vcpus == 0 || e.memory_mib == 0) {
          if (e.instance_type.empty()) return bad("no instance type and no vcpus/memory_mib");
          const InstanceType* t = find_type(types, e.instance_type);
          if (t == nullptr) return bad(fmt::format("unknown instance type '{}'", e.instance_type));
          if (spec.vcpus == 0) spec.vcpus = t->vcpus;
          if (spec.memory_mib == 0) spec.memory_mib = t->memory_mib;
        }
        if (!e.zone.empty() && zones.count(e.zone) == 0)
          return bad(fmt::format("zone '{}' is not in the data center", e.zone));
        if (p.instances.size() >= kNone - 1) return bad("too many instances");
        step.instance = static_cast<uint32_t>(p.instances.size());
        ids.emplace(e.instance, step.instance);
        p.instances.push_back(spec);
        ended.push_back(0);
        break;
      }
      case EventKind::kTerminate:
        if (it == ids.end()) return bad("terminated before its launch");
        if (ended[it->second]) return bad("terminated twice");
        ended[it->second] = 1;
        step.instance = it->second;
        break;
      case EventKind::kUtil:
        if (it == ids.end()) return bad("utilisation before its launch");
        step.instance = it->second;
        step.skip = ended[it->second] != 0;
        break;
    }
    p.steps.push_back(step);
  }
  p.duration_s = std::max(w.duration_s, last);
  if (!std::isfinite(p.duration_s))
    return Status::invalid_argument("the workload's duration is not finite");
  return {};
}

// The smallest k whose k largest capacities (prefix sums) cover `demand`.
uint32_t hosts_needed(const std::vector<uint64_t>& prefix, uint64_t demand) {
  if (demand == 0) return 0;
  auto it = std::lower_bound(prefix.begin(), prefix.end(), demand);
  if (it == prefix.end()) return static_cast<uint32_t>(prefix.size());
  return static_cast<uint32_t>(it - prefix.begin()) + 1;
}

// One policy over the workload.
class Run {
 public:
  Run(const Prepared& p, const Workload& w, const SimOptions& o, Policy policy)
      : p_(p), w_(w), o_(o), policy_(policy), table_(p.hosts) {
    const size_t n = table_.size();
    power_.resize(n);
    for (size_t slot = 0; slot < n; ++slot) power_[slot] = p.power[table_.origin(slot)];
    used_.assign(n, 0.0);
    watts_.assign(n, 0.0);
    clamped_.assign(n, 0.0);
    residents_.resize(n);
    received_.assign(n, 0);
    slot_.assign(p.instances.size(), kNone);
    pos_.assign(p.instances.size(), 0);
    cpu_.assign(p.instances.size(), 0.0);
    result_.policy = policy;
    if (policy == Policy::kDedicated) build_classes();
    next_consolidation_ = policy == Policy::kConsolidate ? o.consolidate_interval_s
                                                         : std::numeric_limits<double>::infinity();
  }

  PolicyResult run() {
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < p_.steps.size(); ++i) {
      const Step& s = p_.steps[i];
      const Event& e = w_.events[i];
      ticks_before(e.time_s);
      advance(e.time_s);
      if (s.skip) continue;
      switch (s.kind) {
        case EventKind::kLaunch:
          launch(s.instance, e);
          break;
        case EventKind::kTerminate:
          terminate(s.instance);
          break;
        case EventKind::kUtil:
          if (slot_[s.instance] != kNone) set_cpu(s.instance, e.cpu);
          break;
      }
    }
    ticks_before(p_.duration_s);
    advance(p_.duration_s);
    take_sample();
    const double d = p_.duration_s;
    if (d > 0) {
      result_.mean_hosts_on = hosts_on_time_ / d;
      result_.mean_lower_bound = lower_bound_time_ / d;
    } else {
      result_.mean_hosts_on = hosts_on_;
      result_.mean_lower_bound = lower_bound_;
    }
    result_.mean_cpu_used = on_time_ > 0 ? cpu_used_time_ / on_time_ : cpu_used_now();
    result_.energy_kwh = joules_ / 3.6e6;
    result_.wall_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::move(result_);
  }

 private:
  // ---- time ----
  // Samples (from 0, every interval) and consolidations (from one interval) strictly before
  // `t`: a tick at time T sees every event at T already applied.
  void ticks_before(double t) {
    for (;;) {
      const double tick = std::min(next_sample_, next_consolidation_);
      if (!(tick < t)) return;
      advance(tick);
      if (next_consolidation_ <= next_sample_) {
        consolidate();
        next_consolidation_ =
            o_.consolidate_interval_s * static_cast<double>(++consolidations_ + 1);
      } else {
        take_sample();
        next_sample_ = o_.sample_interval_s * static_cast<double>(++samples_taken_);
      }
    }
  }

  // Integrates what is piecewise constant (power, hosts on, the bound, CPU use) up to `t`.
  void advance(double t) {
    const double dt = t - now_;
    if (dt > 0) {
      joules_ += total_watts_ * dt;
      hosts_on_time_ += hosts_on_ * dt;
      lower_bound_time_ += lower_bound_ * dt;
      if (hosts_on_ > 0) {
        cpu_used_time_ += cpu_used_now() * dt;
        on_time_ += dt;
      }
      now_ = t;
    }
  }

  double cpu_used_now() const { return cpus_on_ > 0 ? total_clamped_ / cpus_on_ : 0.0; }

  void take_sample() {
    Sample s;
    s.time_s = now_;
    s.hosts_on = hosts_on_;
    s.lower_bound = lower_bound_;
    s.cpu_allocated = vcpus_capacity_on_ > 0 ? vcpus_allocated_ / vcpus_capacity_on_ : 0.0;
    s.cpu_used = cpu_used_now();
    s.memory_allocated = memory_capacity_on_ > 0 ? memory_allocated_ / memory_capacity_on_ : 0.0;
    s.power_w = hosts_on_ > 0 ? total_watts_ : 0.0;
    s.instances = running_;
    s.refused = result_.refused;
    s.migrations = result_.migrations;
    result_.samples.push_back(s);
  }

  // ---- hosts ----
  // The host's power and clamped CPU use from its current state, into the totals.
  void rewatt(uint32_t slot) {
    const HostPower& hp = power_[slot];
    double watts = 0, clamped = 0;
    if (!residents_[slot].empty()) {
      const double cpus = hp.cpus > 0 ? hp.cpus : 1.0;
      clamped = std::min(cpus, std::max(0.0, used_[slot]));
      watts = hp.peak_watts * (hp.idle_fraction + (1 - hp.idle_fraction) * (clamped / cpus));
    }
    total_watts_ += watts - watts_[slot];
    total_clamped_ += clamped - clamped_[slot];
    watts_[slot] = watts;
    clamped_[slot] = clamped;
  }

  // Puts instance `i` on `slot` in the model (the table has claimed it already).
  void attach(uint32_t i, uint32_t slot) {
    const InstanceSpec& spec = p_.instances[i];
    std::vector<uint32_t>& here = residents_[slot];
    const HostCandidate& h = table_.host(slot);
    if (here.empty()) {
      ++hosts_on_;
      result_.peak_hosts_on = std::max(result_.peak_hosts_on, hosts_on_);
      cpus_on_ += power_[slot].cpus;
      vcpus_capacity_on_ += static_cast<double>(h.vcpus_capacity);
      memory_capacity_on_ += static_cast<double>(h.memory_mib_capacity);
    }
    pos_[i] = static_cast<uint32_t>(here.size());
    here.push_back(i);
    slot_[i] = slot;
    vcpus_allocated_ += spec.vcpus;
    memory_allocated_ += static_cast<double>(spec.memory_mib + h.vm_overhead_mib);
    used_[slot] += cpu_[i] * spec.vcpus;
    rewatt(slot);
  }

  // Takes instance `i` off its host in the model (the table is released separately).
  void detach(uint32_t i) {
    const InstanceSpec& spec = p_.instances[i];
    const uint32_t slot = slot_[i];
    std::vector<uint32_t>& here = residents_[slot];
    const HostCandidate& h = table_.host(slot);
    const uint32_t last = here.back();
    here[pos_[i]] = last;
    pos_[last] = pos_[i];
    here.pop_back();
    slot_[i] = kNone;
    vcpus_allocated_ -= spec.vcpus;
    memory_allocated_ -= static_cast<double>(spec.memory_mib + h.vm_overhead_mib);
    used_[slot] -= cpu_[i] * spec.vcpus;
    if (here.empty()) {
      used_[slot] = 0;  // no rounding left behind
      --hosts_on_;
      cpus_on_ -= power_[slot].cpus;
      vcpus_capacity_on_ -= static_cast<double>(h.vcpus_capacity);
      memory_capacity_on_ -= static_cast<double>(h.memory_mib_capacity);
    }
    rewatt(slot);
    if (hosts_on_ == 0) {  // exact zeros again, whatever the sums drifted by
      total_watts_ = total_clamped_ = 0;
      vcpus_allocated_ = memory_allocated_ = vcpus_capacity_on_ = memory_capacity_on_ = 0;
      cpus_on_ = 0;
    }
  }

  void set_cpu(uint32_t i, double cpu) {
    const uint32_t slot = slot_[i];
    used_[slot] += (cpu - cpu_[i]) * p_.instances[i].vcpus;
    cpu_[i] = cpu;
    rewatt(slot);
  }

  void demand_changed() {
    lower_bound_ = std::max(hosts_needed(p_.vcpu_prefix, vcpu_demand_),
                            hosts_needed(p_.memory_prefix, memory_demand_));
  }

  // ---- events ----
  void fill_request(const Event& e, const InstanceSpec& spec, const std::string& zone) {
    req_.zone = zone;
    req_.vcpus = spec.vcpus;
    req_.memory_mib = spec.memory_mib;
    req_.disk_mib = spec.disk_mib;
    req_.instance_type = e.instance_type;
    if (e.group.empty()) {
      req_.group.reset();
    } else {
      if (!req_.group) req_.group.emplace();
      req_.group->name = e.group;
      req_.group->strategy = e.group_strategy;
      req_.group->partition_count = e.partition_count;
    }
  }

  void launch(uint32_t i, const Event& e) {
    const InstanceSpec& spec = p_.instances[i];
    ++result_.launches;
    cpu_[i] = e.cpu;
    uint32_t slot = kNone;
    std::string shortage;
    if (policy_ == Policy::kDedicated) {
      slot = dedicated_slot(e.zone, spec);
      if (slot == kNone) {
        shortage =
            fmt::format("no empty host{}{} fits {} vCPUs, {} MiB",
                        e.zone.empty() ? "" : " in zone ", e.zone, spec.vcpus, spec.memory_mib);
      } else {
        table_.claim(slot, spec.vcpus, spec.memory_mib, spec.disk_mib, e.group);
        take_empty(slot);
      }
    } else {
      fill_request(e, spec, e.zone);
      Placement pl =
          place(table_, req_, 1, policy_ == Policy::kSpread ? Strategy::kSpread : Strategy::kPack);
      if (pl.slots.empty()) {
        shortage = std::move(pl.shortage);
      } else {
        slot = static_cast<uint32_t>(pl.slots[0]);
      }
    }
    if (slot == kNone) {
      ++result_.refused;
      if (o_.record_placements) result_.placements.push_back({e.time_s, e.instance, "", shortage});
      return;
    }
    ++running_;
    vcpu_demand_ += spec.vcpus;
    memory_demand_ += spec.memory_mib;
    demand_changed();
    attach(i, slot);
    if (o_.record_placements)
      result_.placements.push_back({e.time_s, e.instance, table_.host(slot).id, ""});
  }

  void terminate(uint32_t i) {
    const uint32_t slot = slot_[i];
    if (slot == kNone) return;  // refused at launch
    const InstanceSpec& spec = p_.instances[i];
    const Event& launch_event = w_.events[spec.launch_event];
    table_.release(slot, spec.vcpus, spec.memory_mib, spec.disk_mib, launch_event.group);
    detach(i);
    ++result_.terminations;
    --running_;
    vcpu_demand_ -= spec.vcpus;
    memory_demand_ -= spec.memory_mib;
    demand_changed();
    if (policy_ == Policy::kDedicated && residents_[slot].empty()) give_empty(slot);
  }

  // ---- dedicated: the empty hosts by zone and capacity ----
  struct Class {
    uint32_t zone;  // table zone index
    uint64_t vcpus, memory_mib, disk_mib, overhead;
    std::set<uint32_t> empty;  // slots, in slot order
  };

  void build_classes() {
    class_of_.resize(table_.size());
    for (uint32_t slot = 0; slot < table_.size(); ++slot) {
      const HostCandidate& h = table_.host(slot);
      const uint32_t zone = table_.rows()[slot].zone;
      size_t c = 0;
      for (; c < classes_.size(); ++c) {
        const Class& k = classes_[c];
        if (k.zone == zone && k.vcpus == h.vcpus_capacity &&
            k.memory_mib == h.memory_mib_capacity && k.disk_mib == h.disk_mib_capacity &&
            k.overhead == h.vm_overhead_mib)
          break;
      }
      if (c == classes_.size())
        classes_.push_back({zone,
                            h.vcpus_capacity,
                            h.memory_mib_capacity,
                            h.disk_mib_capacity,
                            h.vm_overhead_mib,
                            {}});
      class_of_[slot] = static_cast<uint32_t>(c);
      classes_[c].empty.insert(classes_[c].empty.end(), slot);
    }
  }

  // The first empty host (slot order) of `zone` ("" any) whose capacity fits, or kNone.
  uint32_t dedicated_slot(const std::string& zone, const InstanceSpec& spec) const {
    uint32_t zi = kNone;
    if (!zone.empty()) {
      const auto& names = table_.zone_names();
      auto it = std::lower_bound(names.begin(), names.end(), zone);
      if (it == names.end() || *it != zone) return kNone;
      zi = static_cast<uint32_t>(it - names.begin());
    }
    uint32_t best = kNone;
    for (const Class& k : classes_) {
      if ((zi != kNone && k.zone != zi) || k.empty.empty()) continue;
      if (k.vcpus < spec.vcpus || k.memory_mib < spec.memory_mib + k.overhead ||
          k.disk_mib < spec.disk_mib)
        continue;
      best = std::min(best, *k.empty.begin());
    }
    return best;
  }
  void take_empty(uint32_t slot) { classes_[class_of_[slot]].empty.erase(slot); }
  void give_empty(uint32_t slot) { classes_[class_of_[slot]].empty.insert(slot); }

  // ---- consolidation (SimOptions) ----
  void consolidate() {
    const double thr = o_.consolidate_threshold;
    struct Source {
      double load;
      uint32_t slot;
    };
    std::vector<Source> sources;
    for (uint32_t slot = 0; slot < table_.size(); ++slot) {
      if (residents_[slot].empty()) continue;
      const HostCandidate& h = table_.host(slot);
      if (!h.alive || !h.accepting || h.vcpus_capacity == 0 || h.memory_mib_capacity == 0) continue;
      const double fv =
          static_cast<double>(h.vcpus_allocated) / static_cast<double>(h.vcpus_capacity);
      const double fm =
          static_cast<double>(h.memory_mib_allocated) / static_cast<double>(h.memory_mib_capacity);
      if (fv < thr && fm < thr) sources.push_back({std::max(fv, fm), slot});
    }
    if (sources.empty()) return;
    std::sort(sources.begin(), sources.end(), [](const Source& a, const Source& b) {
      return a.load != b.load ? a.load < b.load : a.slot < b.slot;
    });
    std::vector<uint32_t> drained, received;
    std::vector<std::pair<uint32_t, uint32_t>> moves;  // (instance, target slot)
    for (const Source& src : sources) {
      const uint32_t slot = src.slot;
      if (received_[slot]) continue;  // took instances this round: it stays
      table_.set_accepting(slot, false);
      moves.clear();
      bool ok = true;
      const std::string& zone = table_.host(slot).zone;
      for (uint32_t i : residents_[slot]) {
        const InstanceSpec& spec = p_.instances[i];
        const Event& e = w_.events[spec.launch_event];
        table_.release(slot, spec.vcpus, spec.memory_mib, spec.disk_mib, e.group);
        fill_request(e, spec, zone);
        Placement pl = place(table_, req_, 1, Strategy::kPack);
        uint32_t target = pl.slots.empty() ? kNone : static_cast<uint32_t>(pl.slots[0]);
        if (target != kNone && residents_[target].empty()) {
          // Moving onto a host that was off saves nothing.
          table_.release(target, spec.vcpus, spec.memory_mib, spec.disk_mib, e.group);
          target = kNone;
        }
        if (target == kNone) {
          table_.claim(slot, spec.vcpus, spec.memory_mib, spec.disk_mib, e.group);
          ok = false;
          break;
        }
        moves.push_back({i, target});
      }
      if (!ok) {
        for (const auto& [i, target] : moves) {
          const InstanceSpec& spec = p_.instances[i];
          const std::string& group = w_.events[spec.launch_event].group;
          table_.release(target, spec.vcpus, spec.memory_mib, spec.disk_mib, group);
          table_.claim(slot, spec.vcpus, spec.memory_mib, spec.disk_mib, group);
        }
        table_.set_accepting(slot, true);
        continue;
      }
      for (const auto& [i, target] : moves) {
        detach(i);
        attach(i, target);
        ++result_.migrations;
        result_.migrated_mib += p_.instances[i].memory_mib;
        if (!received_[target]) {
          received_[target] = 1;
          received.push_back(target);
        }
      }
      drained.push_back(slot);
    }
    for (uint32_t slot : drained) table_.set_accepting(slot, true);
    for (uint32_t slot : received) received_[slot] = 0;
  }

  const Prepared& p_;
  const Workload& w_;
  const SimOptions& o_;
  Policy policy_;
  HostTable table_;
  PlacementRequest req_;  // reused: its strings keep their buffers
  PolicyResult result_;

  // Per slot.
  std::vector<HostPower> power_;
  std::vector<double> used_;     // sum of cpu x vCPUs of its instances
  std::vector<double> watts_;    // its term in total_watts_
  std::vector<double> clamped_;  // min(cpus, used): its term in total_clamped_
  std::vector<std::vector<uint32_t>> residents_;
  std::vector<uint8_t> received_;  // took instances in this consolidation
  // Per instance (dense number).
  std::vector<uint32_t> slot_, pos_;
  std::vector<double> cpu_;
  // Dedicated.
  std::vector<Class> classes_;
  std::vector<uint32_t> class_of_;

  // Running totals.
  uint32_t hosts_on_ = 0, lower_bound_ = 0;
  uint64_t running_ = 0, vcpu_demand_ = 0, memory_demand_ = 0;
  double cpus_on_ = 0, vcpus_capacity_on_ = 0, memory_capacity_on_ = 0;
  double vcpus_allocated_ = 0, memory_allocated_ = 0;
  double total_watts_ = 0, total_clamped_ = 0;
  // Time.
  double now_ = 0, next_sample_ = 0, next_consolidation_;
  uint64_t samples_taken_ = 0, consolidations_ = 0;
  double joules_ = 0, hosts_on_time_ = 0, lower_bound_time_ = 0, cpu_used_time_ = 0, on_time_ = 0;
};

}  // namespace

std::string policy_name(Policy p) {
  switch (p) {
    case Policy::kSpread:
      return "spread";
    case Policy::kPack:
      return "pack";
    case Policy::kConsolidate:
      return "pack+migrate";
    case Policy::kDedicated:
      return "dedicated";
  }
  return "unknown";
}

Result<Policy> parse_policy(const std::string& name) {
  for (Policy p : {Policy::kSpread, Policy::kPack, Policy::kConsolidate, Policy::kDedicated}) {
    if (policy_name(p) == name) return p;
  }
  return Status::invalid_argument(
      fmt::format("unknown policy '{}' (spread, pack, pack+migrate, dedicated)", name));
}

Result<SimResult> simulate(const DataCenter& dc, const Workload& w,
                           const std::vector<InstanceType>& types, const SimOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (!(o.sample_interval_s > 0) || !std::isfinite(o.sample_interval_s))
    return Status::invalid_argument("the sample interval must be a finite time > 0");
  const bool consolidating =
      std::find(o.policies.begin(), o.policies.end(), Policy::kConsolidate) != o.policies.end();
  if (consolidating &&
      (!(o.consolidate_interval_s > 0) || !std::isfinite(o.consolidate_interval_s)))
    return Status::invalid_argument("the consolidation interval must be a finite time > 0");
  if (consolidating && !(o.consolidate_threshold >= 0 && o.consolidate_threshold <= 1))
    return Status::invalid_argument("the consolidation threshold must be in [0, 1]");
  Prepared p;
  if (Status s = build_hosts(dc, p); !s.ok()) return s;
  if (Status s = build_steps(dc, w, types, p); !s.ok()) return s;
  if (p.duration_s / o.sample_interval_s > kMaxSamples)
    return Status::invalid_argument(fmt::format("{} s sampled every {} s is more than {} samples",
                                                p.duration_s, o.sample_interval_s, kMaxSamples));
  if (consolidating && p.duration_s / o.consolidate_interval_s > kMaxSamples)
    return Status::invalid_argument(
        fmt::format("{} s consolidated every {} s is more than {} consolidation rounds",
                    p.duration_s, o.consolidate_interval_s, kMaxSamples));

  SimResult out;
  out.datacenter = dc.name;
  out.workload = w.name;
  out.hosts = p.hosts.size();
  out.events = w.events.size();
  out.duration_s = p.duration_s;
  for (Policy policy : o.policies) out.policies.push_back(Run(p, w, o, policy).run());
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace nimbus::cloud::sim
