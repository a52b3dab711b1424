// Moves and drains: an instance's live migration to another host, as the records see it
// (docs/cloud.md, "Moves and drains"). The API asks (request_move, drain_host); the
// reconciler (reconciler.cpp) claims the target (begin_move), has the source host migrate
// the VM, and records where it runs (finish_move) or why it stayed (fail_move). Every step
// is one transaction compared on what it read, so a control plane killed between two steps
// leaves records the next leader continues from.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <set>
#include <thread>

#include "cloud/cloud.h"

namespace nimbus::cloud {

namespace {

constexpr int kAttempts = 40;

std::string instance_key(const std::string& id) { return kInstancesPrefix + id; }
std::string alloc_key(const std::string& host) { return kAllocPrefix + host; }

void pause(int attempt) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1 + (attempt % 8) * 2));
}

Ec2Error host_not_found(const std::string& host) {
  return ec2_error("InvalidHostId.NotFound", fmt::format("The host '{}' does not exist", host),
                   404);
}

// The instance, its revision and the allocations of `hosts` with theirs (0: absent).
struct View {
  InstanceRecord inst;
  int64_t revision = 0;
  std::map<std::string, std::pair<HostAllocation, int64_t>> allocs;
};

Result<View> read_view(Store& store, const std::string& id) {
  auto kv = store.get(instance_key(id));
  if (!kv.ok()) return kv.status();
  if (!*kv) return Status::not_found("no instance " + id);
  auto i = instance_from_json((*kv)->value);
  if (!i.ok()) return i.status();
  View v;
  v.inst = *i;
  v.revision = (*kv)->mod_revision;
  return v;
}

Status read_alloc(Store& store, View& v, const std::string& host) {
  if (host.empty() || v.allocs.count(host)) return Status();
  auto kv = store.get(alloc_key(host));
  if (!kv.ok()) return kv.status();
  if (!*kv) {
    v.allocs[host] = {HostAllocation{}, 0};
    return Status();
  }
  auto a = allocation_from_json((*kv)->value);
  if (!a.ok()) return a.status();
  v.allocs[host] = {*a, (*kv)->mod_revision};
  return Status();
}

// Commits the view's instance and allocations, compared on the revisions read.
Result<bool> commit(Store& store, const View& v) {
  std::vector<Compare> compares{{instance_key(v.inst.id), v.revision}};
  std::vector<Op> ops{{Op::Kind::kPut, instance_key(v.inst.id), to_json(v.inst).dump()}};
  for (const auto& [host, a] : v.allocs) {
    compares.push_back({alloc_key(host), a.second});
    ops.push_back({Op::Kind::kPut, alloc_key(host), to_json(a.first).dump()});
  }
  auto r = store.txn(compares, ops);
  if (!r.ok()) return r.status();
  return r->succeeded;
}

}  // namespace

Ec2Result<std::string> Cloud::choose_move_target(
    const InstanceRecord& inst, const std::string& wanted,
    std::map<std::string, std::pair<HostAllocation, int64_t>>& allocs,
    std::map<std::string, HostRecord>& records) {
  auto cands = candidates(allocs, records, false);
  if (!cands.ok()) return cands.error();
  const bool any = wanted.empty() || wanted == "*";
  std::vector<HostCandidate> eligible;
  bool known = false;
  for (const auto& c : *cands) {
    if (c.id == wanted) known = true;
    if (c.id == inst.host) continue;
    if (!any && c.id != wanted) continue;
    if (!any && c.zone != inst.zone)
      return ec2_error("InvalidParameterValue",
                       fmt::format("host {} is in {}, instance {} in {}: an instance moves "
                                   "within its zone",
                                   c.id, c.zone, inst.id, inst.zone));
    eligible.push_back(c);
  }
  if (!any && !known) return host_not_found(wanted);
  if (eligible.empty())
    return ec2_error("InsufficientInstanceCapacity",
                     fmt::format("no other host in {} to move {} to", inst.zone, inst.id), 409);
  PlacementRequest preq;
  preq.zone = inst.zone;
  preq.vcpus = inst.vcpus;
  preq.memory_mib = inst.memory_mib;
  preq.disk_mib = inst.disk_mib;
  preq.instance_type = inst.instance_type;
  Placement p = place(eligible, preq, 1, options_.strategy);
  if (p.hosts.empty())
    return ec2_error("InsufficientInstanceCapacity",
                     fmt::format("cannot move {} ({}) to {}: {}", inst.id, inst.instance_type,
                                 any ? "another host of " + inst.zone : wanted,
                                 p.shortage.empty() ? "no host has room" : p.shortage),
                     409);
  return p.hosts[0];
}

Ec2Result<InstanceRecord> Cloud::request_move(const std::string& id, const std::string& host) {
  auto i = instance(id);
  if (!i.ok()) {
    Ec2Error e = i.error();
    if (e.code == "InvalidInstanceID.NotFound") e.http_status = 404;
    return e;
  }
  auto not_running = [&](const InstanceRecord& r) -> std::optional<Ec2Error> {
    if (r.state != InstanceState::kRunning || r.desired != Desired::kRunning)
      return ec2_error("IncorrectInstanceState",
                       fmt::format("The instance '{}' is not running (it is {}): only a running "
                                   "instance moves",
                                   id, state_name(r.state)),
                       409);
    if (!r.move_to.empty())
      return ec2_error("IncorrectInstanceState",
                       fmt::format("The instance '{}' is already moving (to {})", id, r.move_to),
                       409);
    return std::nullopt;
  };
  if (auto e = not_running(*i)) return *e;
  if (!host.empty() && host == i->host)
    return ec2_error("InvalidParameterValue",
                     fmt::format("The instance '{}' is on {} already", id, host));
  std::map<std::string, std::pair<HostAllocation, int64_t>> allocs;
  std::map<std::string, HostRecord> records;
  auto target = choose_move_target(*i, host, allocs, records);
  if (!target.ok()) return target.error();
  std::optional<Ec2Error> refused;
  Status s = update_instance(id, [&](InstanceRecord& r) {
    refused = not_running(r);
    if (refused) return false;
    r.move_to = *target;
    r.move_drain = false;
    ++r.move_id;
    return true;
  });
  if (!s.ok()) return from_status(s);
  if (refused) return *refused;
  spdlog::info("instance {}: move from {} to {} asked", id, i->host, *target);
  kick();
  return instance(id);
}

Ec2Result<Cloud::DrainResult> Cloud::drain_host(const std::string& host) {
  auto kv = store_.get(kHostsPrefix + host);
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv) return host_not_found(host);
  if (Status s = set_draining(host, true); !s.ok()) return from_status(s);
  auto all = instances();
  if (!all.ok()) return all.error();
  DrainResult out;
  for (const auto& inst : *all) {
    if (inst.host != host || inst.state == InstanceState::kTerminated) continue;
    std::string why;
    Status s = update_instance(inst.id, [&](InstanceRecord& r) {
      why.clear();
      if (!r.move_to.empty()) return false;  // moving already
      if (r.desired != Desired::kRunning ||
          (r.state != InstanceState::kRunning && r.state != InstanceState::kPending)) {
        why = fmt::format("{}: only running instances move (its disk stays on {})",
                          state_name(r.state), host);
        return false;
      }
      r.move_to.assign(1, '*');  // the scheduler picks when it starts
      r.move_drain = true;
      ++r.move_id;
      return true;
    });
    if (!s.ok()) return from_status(s);
    if (!why.empty()) {
      out.staying.push_back({inst.id, why});
      continue;
    }
    auto now = instance(inst.id);
    if (now.ok()) out.moving.push_back(*now);
  }
  spdlog::info("host {} drains: {} instance(s) to move, {} staying", host, out.moving.size(),
               out.staying.size());
  kick();
  return out;
}

Ec2Result<std::vector<std::string>> Cloud::undrain_host(const std::string& host) {
  auto kv = store_.get(kHostsPrefix + host);
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv) return host_not_found(host);
  if (Status s = set_draining(host, false); !s.ok()) return from_status(s);
  auto all = instances();
  if (!all.ok()) return all.error();
  std::vector<std::string> cancelled;
  for (const auto& inst : *all) {
    if (inst.host != host || !inst.move_drain) continue;
    bool did = false;
    Status s = update_instance(inst.id, [&](InstanceRecord& r) {
      did = false;
      if (!r.move_drain || !r.move_from.empty() || r.move_to.empty()) return false;
      r.move_to.clear();
      r.move_drain = false;
      did = true;
      return true;
    });
    if (!s.ok()) return from_status(s);
    if (did) cancelled.push_back(inst.id);
  }
  spdlog::info("host {} takes instances again ({} queued move(s) cancelled)", host,
               cancelled.size());
  kick();
  return cancelled;
}

Ec2Result<InstanceRecord> Cloud::begin_move(const std::string& id) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto v = read_view(store_, id);
    if (!v.ok()) return from_status(v.status());
    InstanceRecord& inst = v->inst;
    if (inst.move_to.empty())
      return ec2_error("IncorrectInstanceState", fmt::format("{} has no move to begin", id), 409);
    if (!inst.move_from.empty()) return inst;  // begun already
    std::map<std::string, std::pair<HostAllocation, int64_t>> allocs;
    std::map<std::string, HostRecord> records;
    auto target = choose_move_target(inst, inst.move_to, allocs, records);
    if (!target.ok()) return target.error();
    HostAllocation& a = allocs[*target].first;
    auto ip = free_public_ip(options_.public_prefix, records[*target].index, a);
    if (!ip)
      return ec2_error("InsufficientInstanceCapacity",
                       fmt::format("host {}'s public address pool is exhausted", *target), 409);
    a.instances[id] = Claim{inst.vcpus, inst.memory_mib, inst.disk_mib, true, *ip};
    inst.move_from = inst.host;
    inst.move_to = *target;
    inst.move_public_ip = *ip;
    v->allocs[*target] = allocs[*target];
    auto ok = commit(store_, *v);
    if (!ok.ok()) return from_status(ok.status());
    if (*ok) {
      spdlog::info("instance {}: moving from {} to {} (claimed there; public address {})", id,
                   inst.move_from, *target, *ip);
      return inst;
    }
    pause(attempt);
  }
  return ec2_error("InsufficientInstanceCapacity", "too many changes on the hosts: try again", 409);
}

Status Cloud::finish_move(const std::string& id, const std::string& target, double downtime_ms,
                          double total_ms) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto v = read_view(store_, id);
    if (!v.ok()) return v.status();
    InstanceRecord& inst = v->inst;
    const std::string source = inst.host;
    if (source == target && inst.move_to.empty()) return Status();  // recorded already
    auto host_kv = store_.get(kHostsPrefix + target);
    if (!host_kv.ok()) return host_kv.status();
    if (!*host_kv) return Status::not_found("no host " + target);
    auto host = host_from_json((*host_kv)->value);
    if (!host.ok()) return host.status();
    if (Status s = read_alloc(store_, *v, source); !s.ok()) return s;
    if (Status s = read_alloc(store_, *v, target); !s.ok()) return s;
    if (!inst.move_from.empty() && inst.move_to != target && !inst.move_to.empty()) {
      // It went elsewhere than the claim: that claim goes.
      if (Status s = read_alloc(store_, *v, inst.move_to); !s.ok()) return s;
      v->allocs[inst.move_to].first.instances.erase(id);
    }
    HostAllocation& there = v->allocs[target].first;
    Claim& claim = there.instances[id];
    if (claim.public_ip.empty()) {  // found there without a claim: claim what it holds
      HostAllocation others = there;
      others.instances.erase(id);
      auto ip = free_public_ip(options_.public_prefix, host->index, others);
      claim = Claim{inst.vcpus, inst.memory_mib, inst.disk_mib, true, ip.value_or("")};
    }
    if (source != target) v->allocs[source].first.instances.erase(id);
    MoveResult m;
    m.id = inst.move_id;
    m.from = source;
    m.to = target;
    m.ok = true;
    m.downtime_ms = downtime_ms;
    m.total_ms = total_ms;
    m.at = iso_time_now();
    m.old_public_ip = inst.public_ip;
    m.new_public_ip = claim.public_ip;
    inst.last_move = m;
    inst.host = target;
    inst.zone = host->zone;
    inst.public_ip = claim.public_ip;
    inst.clear_move();
    auto ok = commit(store_, *v);
    if (!ok.ok()) return ok.status();
    if (*ok) {
      spdlog::info(
          "instance {}: moved from {} to {} (downtime {} ms, {} ms in all; public address "
          "{} -> {})",
          id, source, target, downtime_ms, total_ms, m.old_public_ip, m.new_public_ip);
      kick();
      return Status();
    }
    pause(attempt);
  }
  return Status::conflict("too many changes to " + id + " and its hosts: try again");
}

Status Cloud::fail_move(const std::string& id, const std::string& error) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto v = read_view(store_, id);
    if (!v.ok()) return v.status();
    InstanceRecord& inst = v->inst;
    if (inst.move_to.empty()) return Status();
    const std::string target = inst.move_to;
    if (!inst.move_from.empty() && target != inst.host) {
      if (Status s = read_alloc(store_, *v, target); !s.ok()) return s;
      v->allocs[target].first.instances.erase(id);
    }
    MoveResult m;
    m.id = inst.move_id;
    m.from = inst.host;
    m.to = target;
    m.ok = false;
    m.error = error;
    m.at = iso_time_now();
    inst.last_move = m;
    inst.clear_move();
    auto ok = commit(store_, *v);
    if (!ok.ok()) return ok.status();
    if (*ok) {
      spdlog::warn("instance {}: the move from {} to {} failed, it stays on {}: {}", id, m.from,
                   target, m.from, error);
      kick();
      return Status();
    }
    pause(attempt);
  }
  return Status::conflict("too many changes to " + id + " and its hosts: try again");
}

}  // namespace nimbus::cloud
