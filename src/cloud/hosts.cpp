// Hosts: joining by heartbeat, liveness, and the scheduler's view of their capacity.
#include <fmt/format.h>

#include <algorithm>
#include <future>
#include <optional>
#include <set>

#include "cloud/cloud.h"
#include "common/http_client.h"
#include "common/log.h"

namespace nimbus::cloud {

namespace {

bool valid_host_id(const std::string& id) {
  if (id.empty() || id.size() > 63 || !(id[0] >= 'a' && id[0] <= 'z')) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

const nlohmann::json* field(const nlohmann::json& j, const char* name, nlohmann::json::value_t t) {
  auto it = j.find(name);
  if (it == j.end() || it->type() != t) return nullptr;
  return &*it;
}

// What a host reports is read field by field: a field of another type counts as absent
// (json::value() would throw on it, and a host's report must never break placement).
uint64_t unsigned_field(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto v = j.find(key);
  return v != j.end() && v->is_number_unsigned() ? v->get<uint64_t>() : 0;
}

std::string string_field(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return "";
  auto v = j.find(key);
  return v != j.end() && v->is_string() ? v->get<std::string>() : "";
}

uint64_t number_at(const nlohmann::json& host, const char* line, const char* key) {
  auto it = host.find(line);
  if (it == host.end()) return 0;
  return unsigned_field(*it, key);
}

}  // namespace

Ec2Result<nlohmann::json> Cloud::heartbeat(const nlohmann::json& body) {
  using V = nlohmann::json::value_t;
  if (!body.is_object())
    return ec2_error("InvalidParameterValue", "the heartbeat is not an object");
  const auto* id = field(body, "host_id", V::string);
  const auto* zone = field(body, "zone", V::string);
  const auto* api_url = field(body, "api_url", V::string);
  const auto* api_token = field(body, "api_token", V::string);
  const auto* host = field(body, "host", V::object);
  const auto* vms = field(body, "vms", V::array);
  if (!id || !zone || !api_url || !api_token || !host || !vms)
    return ec2_error("MissingParameter",
                     "a heartbeat needs host_id, zone, api_url, api_token, host and vms");
  if (!valid_host_id(id->get<std::string>()))
    return ec2_error("InvalidParameterValue",
                     "host_id must be 1-63 characters of [a-z0-9-], starting with a letter");
  const std::string z = zone->get<std::string>();
  if (std::find(options_.zones.begin(), options_.zones.end(), z) == options_.zones.end())
    return ec2_error("InvalidParameterValue",
                     fmt::format("zone '{}' is not a zone of region {} ({})", z, options_.region,
                                 fmt::join(options_.zones, ", ")));
  auto target = http::parse_target(api_url->get<std::string>());
  if (!target.ok() || target->unix_socket)
    return ec2_error("InvalidParameterValue", "api_url must be http://HOST:PORT");
  if (api_token->get<std::string>().size() > 512)
    return ec2_error("InvalidParameterValue", "api_token is too long");
  // The host's VPC tunnel (UDP), if it has one: absent means none.
  std::string tunnel_endpoint;
  if (auto t = body.find("tunnel_endpoint"); t != body.end() && !t->is_null()) {
    if (!t->is_string() || !valid_tunnel_endpoint(t->get<std::string>()))
      return ec2_error("InvalidParameterValue",
                       "tunnel_endpoint must be \"IPV4:PORT\" (a unicast address, port 1-65535)");
    tunnel_endpoint = t->get<std::string>();
  }

  const std::string key = kHostsPrefix + id->get<std::string>();
  auto existing = store_.get(key);
  if (!existing.ok()) return from_status(existing.status());
  HostRecord rec;
  if (*existing) {
    auto parsed = host_from_json((*existing)->value);
    if (!parsed.ok()) return from_status(parsed.status());
    rec = *parsed;
  }
  if (*existing && rec.zone != z) {
    auto alloc = store_.get(kAllocPrefix + rec.id);
    if (alloc.ok() && *alloc) {
      auto a = allocation_from_json((*alloc)->value);
      if (a.ok() && !a->instances.empty())
        return ec2_error(
            "IncorrectState",
            fmt::format("host {} has instances in {}: it cannot move to {}", rec.id, rec.zone, z));
    }
  }
  HostRecord next = rec;
  next.id = id->get<std::string>();
  next.zone = z;
  next.api_url = target->shown();
  next.api_token = api_token->get<std::string>();
  next.host = *host;
  if (const auto* images = field(body, "images", V::array)) next.images = *images;
  next.tunnel_endpoint = tunnel_endpoint;
  if (!*existing) {
    next.joined_at = iso_time_now();
    // The first free index among the hosts (each host's public pool is PREFIX.INDEX.0/24).
    auto all = store_.list(kHostsPrefix);
    if (!all.ok()) return from_status(all.status());
    std::vector<bool> used(256, false);
    for (const KeyValue& kv : *all) {
      auto h = host_from_json(kv.value);
      if (h.ok() && h->index < 256) used[h->index] = true;
    }
    unsigned index = 1;
    while (index < 255 && used[index]) ++index;
    if (index >= 255)
      return ec2_error("HostLimitExceeded", "this region already has 254 hosts", 400);
    next.index = index;
  }
  if (!*existing || to_json(next) != to_json(rec)) {
    // Compared on what was read: two heartbeats of one host never lose a field, and two
    // new hosts never share an index (the second one's create-only put fails; it retries
    // at its next heartbeat).
    auto r = store_.txn({{key, *existing ? (*existing)->mod_revision : 0}},
                        {{Op::Kind::kPut, key, to_json(next).dump()}});
    if (!r.ok()) return from_status(r.status());
    if (!r->succeeded)
      return ec2_error("Conflict", "the host record changed meanwhile: send the heartbeat again",
                       409);
    if (!*existing) {
      spdlog::info("host {} joined in {} (API {}, public pool {}.{}.0/24)", next.id, next.zone,
                   next.api_url, options_.public_prefix, next.index);
    }
  }
  if (shared_liveness_) {
    // The store's lease says whether it is alive (liveness.cpp); the watch updates what
    // every replica knows. A store that cannot be reached fails the heartbeat (503): the
    // host tries another replica, or again.
    if (Status s = refresh_alive_key(next.id, *vms); !s.ok()) return from_status(s);
    std::lock_guard<std::mutex> lock(mu_);
    auto& l = liveness_[next.id];
    l.last_seen = clock_();
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    auto& l = liveness_[next.id];
    const bool was_down = l.last_seen.time_since_epoch().count() != 0 &&
                          clock_() - l.last_seen > options_.host_timeout;
    if (was_down) spdlog::info("host {} is back", next.id);
    l.last_seen = clock_();
    l.vms = *vms;
  }
  kick();
  // The other hosts this one tunnels to (docs/cloud.md, "Networks").
  auto peers = tunnel_peers(next.id);
  if (!peers.ok()) return from_status(peers.status());
  return nlohmann::json{
      {"interval_s", options_.heartbeat_interval.count()},
      {"public_pool", fmt::format("{}.{}.0/24", options_.public_prefix, next.index)},
      {"tunnel_peers", *peers}};
}

bool Cloud::host_alive(const std::string& host_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = liveness_.find(host_id);
  // Shared: alive while its /alive key is there (its lease lives), as every replica sees.
  if (shared_liveness_) return it != liveness_.end() && !it->second.down;
  const auto now = clock_();
  // A restarted control plane gives every host one timeout to send its first heartbeat.
  if (it == liveness_.end()) return now - started_ < options_.host_timeout;
  return now - it->second.last_seen <= options_.host_timeout;
}

std::optional<HostLiveness> Cloud::liveness(const std::string& host_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = liveness_.find(host_id);
  if (it == liveness_.end()) return std::nullopt;
  return it->second;
}

Ec2Result<std::vector<HostView>> Cloud::hosts() {
  auto all = store_.list(kHostsPrefix);
  if (!all.ok()) return from_status(all.status());
  std::vector<HostView> out;
  for (const KeyValue& kv : *all) {
    auto h = host_from_json(kv.value);
    if (!h.ok()) return from_status(h.status());
    HostView v;
    v.record = *h;
    auto a = store_.get(kAllocPrefix + h->id);
    if (a.ok() && *a) {
      auto alloc = allocation_from_json((*a)->value);
      if (alloc.ok()) v.allocation = *alloc;
    }
    v.alive = host_alive(h->id);
    if (auto l = liveness(h->id)) {
      v.seconds_since_heartbeat = std::chrono::duration<double>(clock_() - l->last_seen).count();
    }
    out.push_back(std::move(v));
  }
  return out;
}

Status Cloud::set_draining(const std::string& host_id, bool draining) {
  auto r = update(store_, kHostsPrefix + host_id,
                  [&](const std::optional<KeyValue>& kv) -> Result<std::optional<std::string>> {
                    if (!kv) return Status::not_found("no host " + host_id);
                    auto h = host_from_json(kv->value);
                    if (!h.ok()) return h.status();
                    h->draining = draining;
                    return std::optional<std::string>(to_json(*h).dump());
                  });
  if (!r.ok()) return r.status();
  kick();
  return Status();
}

Ec2Result<std::vector<HostCandidate>> Cloud::candidates(
    std::map<std::string, std::pair<HostAllocation, int64_t>>& allocs,
    std::map<std::string, HostRecord>& records, bool with_groups) {
  // Both at once: on etcd each is a round trip.
  auto allocs_read = std::async(std::launch::async, [this] { return store_.list(kAllocPrefix); });
  auto all = store_.list(kHostsPrefix);
  auto all_allocs = allocs_read.get();
  if (!all.ok()) return from_status(all.status());
  if (!all_allocs.ok()) return from_status(all_allocs.status());
  for (const KeyValue& kv : *all_allocs) {
    auto a = allocation_from_json(kv.value);
    if (!a.ok()) return from_status(a.status());
    allocs[kv.key.substr(std::string(kAllocPrefix).size())] = {*a, kv.mod_revision};
  }
  // Every instance record is read only when needed (it grows with the cloud, and each
  // launch calls this): for the groups, or when a host reports a VM its allocation does not
  // claim (a CLI-made VM, or a terminated instance's VM still in the last heartbeat).
  std::optional<std::vector<KeyValue>> insts;
  std::set<std::string> instance_ids;
  auto read_instances = [&]() -> Status {
    if (insts) return Status();
    auto r = store_.list(kInstancesPrefix);
    if (!r.ok()) return r.status();
    insts = std::move(*r);
    for (const KeyValue& kv : *insts)
      instance_ids.insert(kv.key.substr(std::string(kInstancesPrefix).size()));
    return Status();
  };
  if (with_groups) {
    if (Status s = read_instances(); !s.ok()) return from_status(s);
  }
  std::vector<HostCandidate> out;
  for (const KeyValue& kv : *all) {
    auto h = host_from_json(kv.value);
    if (!h.ok()) return from_status(h.status());
    HostCandidate c;
    c.id = h->id;
    c.zone = h->zone;
    c.alive = host_alive(h->id);
    c.accepting = !h->draining;
    c.vcpus_capacity = number_at(h->host, "cpus", "capacity");
    c.memory_mib_capacity = number_at(h->host, "memory_mib", "capacity");
    c.disk_mib_capacity = number_at(h->host, "disk_mib", "capacity");
    c.vm_overhead_mib = unsigned_field(h->host, "vm_overhead_mib");
    const HostAllocation& a = allocs[h->id].first;  // absent: nothing claimed, revision 0
    for (const auto& [iid, claim] : a.instances) {
      c.disk_mib_allocated += claim.disk_mib;
      if (claim.compute) {
        c.vcpus_allocated += claim.vcpus;
        c.memory_mib_allocated += claim.memory_mib + c.vm_overhead_mib;
      }
    }
    // VMs on the host that are not the cloud's (made with the nimbus CLI) hold capacity too.
    // An instance's VM is never one of them, claimed or not: a terminated instance's VM may
    // still be in the host's last heartbeat after its claim was released.
    if (auto l = liveness(h->id)) {
      for (const auto& vm : l->vms) {
        if (!vm.is_object() || a.instances.count(string_field(vm, "name"))) continue;
        if (Status s = read_instances(); !s.ok()) return from_status(s);
        if (instance_ids.count(string_field(vm, "name"))) continue;
        const std::string desired = string_field(vm, "desired_state");
        c.disk_mib_allocated += unsigned_field(vm, "disk_mib");
        if (desired == "running" || desired == "paused") {
          c.vcpus_allocated += unsigned_field(vm, "cpus");
          c.memory_mib_allocated += unsigned_field(vm, "memory_mib") + c.vm_overhead_mib;
        }
      }
    }
    records[h->id] = *h;
    out.push_back(std::move(c));
  }
  if (!with_groups) return out;
  // Group membership comes from the instances (the allocation does not know groups).
  std::map<std::string, HostCandidate*> by_id;
  for (auto& c : out) by_id[c.id] = &c;
  for (const KeyValue& kv : *insts) {
    auto i = instance_from_json(kv.value);
    if (!i.ok() || i->placement_group.empty() || i->state == InstanceState::kTerminated) continue;
    if (auto it = by_id.find(i->host); it != by_id.end())
      ++it->second->group_members[i->placement_group];
  }
  return out;
}

}  // namespace nimbus::cloud
