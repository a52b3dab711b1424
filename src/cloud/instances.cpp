// Instances: launch (placement and the capacity claim), state changes, resizing.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "cloud/cloud.h"
#include "cloud/sigv4.h"

namespace nimbus::cloud {

namespace {

constexpr int kClaimAttempts = 40;

// After a lost race for a host's allocation: wait a random 0..(2^attempt) ms, at most 64 ms,
// so that launches competing for the same hosts spread out instead of colliding again in
// lockstep (a slow control plane, e.g. under ASan, otherwise starves one of them).
void back_off(int attempt) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const int cap = 1 << std::min(attempt, 6);
  std::this_thread::sleep_for(
      std::chrono::microseconds(std::uniform_int_distribution<int>(0, cap * 1000)(rng)));
}

// How many of the best hosts attempt `attempt` of a launch
// chooses among: 1 first (deterministic), then 4, 8, 16 (Nova's host_subset_size).
unsigned retry_subset(int attempt) { return attempt <= 0 ? 1u : 1u << std::min(attempt + 1, 4); }

uint64_t random_seed() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return rng();
}

constexpr unsigned kMaxPerLaunch = 40;

std::string instance_key(const std::string& id) { return kInstancesPrefix + id; }
std::string alloc_key(const std::string& host) { return kAllocPrefix + host; }

// The fields of a RunInstances that make two requests "the same" for a ClientToken.
std::string request_fingerprint(const RunRequest& r) {
  nlohmann::json j = {{"image", r.image_id},
                      {"type", r.instance_type},
                      {"key", r.key_name},
                      {"user_data", r.user_data},
                      {"min", r.min_count},
                      {"max", r.max_count},
                      {"zone", r.zone},
                      {"group", r.placement_group},
                      {"sg_ids", r.security_group_ids},
                      {"sg_names", r.security_group_names},
                      {"tags", r.instance_tags},
                      {"volume", r.root_volume_gib}};
  // Only when given: tokens of launches before the options existed still match.
  if (const auto& m = r.metadata_options; m != InstanceMetadataOptions{})
    j["metadata"] = {m.http_tokens, m.http_endpoint, m.http_put_response_hop_limit,
                     m.instance_metadata_tags};
  if (!r.subnet_id.empty()) j["subnet"] = r.subnet_id;
  if (!r.private_ip.empty()) j["private_ip"] = r.private_ip;
  return sha256_hex(j.dump());
}

Ec2Error not_found(const std::vector<std::string>& missing) {
  if (missing.size() == 1)
    return ec2_error("InvalidInstanceID.NotFound",
                     fmt::format("The instance ID '{}' does not exist", missing[0]));
  return ec2_error("InvalidInstanceID.NotFound",
                   fmt::format("The instance IDs '{}' do not exist", fmt::join(missing, ", ")));
}

Ec2Error wrong_state(const InstanceRecord& i, std::string_view doing) {
  return ec2_error("IncorrectInstanceState",
                   fmt::format("The instance '{}' is not in a state from which it can be {} "
                               "(it is {})",
                               i.id, doing, state_name(i.state)));
}

}  // namespace

Ec2Result<InstanceRecord> Cloud::instance(const std::string& id) {
  if (!is_id(id, "i"))
    return ec2_error("InvalidInstanceID.Malformed", fmt::format("Invalid id: \"{}\"", id));
  auto kv = store_.get(instance_key(id));
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv) return not_found({id});
  auto i = instance_from_json((*kv)->value);
  if (!i.ok()) return from_status(i.status());
  return *i;
}

Ec2Result<std::vector<InstanceRecord>> Cloud::instances() {
  auto all = store_.list(kInstancesPrefix);
  if (!all.ok()) return from_status(all.status());
  std::vector<InstanceRecord> out;
  out.reserve(all->size());
  for (const KeyValue& kv : *all) {
    auto i = instance_from_json(kv.value);
    if (!i.ok()) return from_status(i.status());
    out.push_back(std::move(*i));
  }
  return out;
}

Status Cloud::update_instance(const std::string& id,
                              const std::function<bool(InstanceRecord&)>& change) {
  // Nothing to change: no write (writing the same value would still bump its revision,
  // and the reconciler asks this of every instance on every pass).
  bool unchanged = false;
  auto r = update(store_, instance_key(id),
                  [&](const std::optional<KeyValue>& kv) -> Result<std::optional<std::string>> {
                    unchanged = false;
                    if (!kv) return Status::not_found("no instance " + id);
                    auto i = instance_from_json(kv->value);
                    if (!i.ok()) return i.status();
                    if (!change(*i)) {
                      unchanged = true;
                      return Status::conflict("unchanged");
                    }
                    return std::optional<std::string>(to_json(*i).dump());
                  });
  return r.ok() || unchanged ? Status() : r.status();
}

Ec2Result<Reservation> Cloud::replay_token(const RunRequest& req) {
  auto kv = store_.get(kTokensPrefix + req.client_token);
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv) return ec2_error("NotFound", "", 404);  // no such token: launch
  nlohmann::json t = nlohmann::json::parse((*kv)->value, nullptr, false);
  if (!t.is_object() || t.value("fingerprint", "") != request_fingerprint(req))
    return ec2_error(
        "IdempotentParameterMismatch",
        fmt::format("The client token '{}' was used with different parameters", req.client_token));
  Reservation r;
  r.id = t.value("reservation_id", "");
  r.owner_id = options_.account_id;
  for (const auto& id : t.value("instances", std::vector<std::string>{})) {
    auto i = store_.get(instance_key(id));
    if (!i.ok()) return from_status(i.status());
    if (!*i) continue;  // purged long after it terminated
    auto rec = instance_from_json((*i)->value);
    if (rec.ok()) r.instances.push_back(*rec);
  }
  return r;
}

Ec2Result<Reservation> Cloud::run_instances(const RunRequest& req) {
  if (req.min_count < 1 || req.max_count < req.min_count || req.max_count > 1000)
    return ec2_error("InvalidParameterValue",
                     "MinCount and MaxCount must be 1 to 1000, MinCount <= MaxCount");
  const InstanceType* type = find_type(options_.instance_types, req.instance_type);
  if (!type)
    return ec2_error("InvalidParameterValue",
                     fmt::format("Invalid value '{}' for InstanceType (DescribeInstanceTypes "
                                 "lists this region's types)",
                                 req.instance_type));
  if (req.image_id.empty()) return ec2_error("MissingParameter", "ImageId is required");
  auto image = this->image(req.image_id);
  if (!image.ok()) return image.error();
  if (!req.zone.empty() &&
      std::find(options_.zones.begin(), options_.zones.end(), req.zone) == options_.zones.end())
    return ec2_error("InvalidParameterValue",
                     fmt::format("Invalid availability zone: [{}]", req.zone));
  if (req.user_data.size() > 21848)  // base64 of 16 KiB
    return ec2_error("InvalidParameterValue", "User data is limited to 16384 bytes");
  if (!req.client_token.empty()) {
    if (req.client_token.size() > 64)
      return ec2_error("InvalidParameterValue", "ClientToken is at most 64 characters");
    auto replay = replay_token(req);
    if (replay.ok() || replay.error().code != "NotFound") return replay;
  }
  std::string public_key;  // kept on the instance: the pair may be deleted later
  if (!req.key_name.empty()) {
    auto key = key_pair(req.key_name);
    if (!key.ok()) return key.error();
    public_key = key->public_key;
  }
  std::vector<std::string> groups;
  for (const auto& id : req.security_group_ids) {
    auto g = resolve_group(id, "");
    if (!g.ok()) return g.error();
    groups.push_back(g->id);
  }
  for (const auto& name : req.security_group_names) {
    auto g = resolve_group("", name);
    if (!g.ok()) return g.error();
    groups.push_back(g->id);
  }
  if (groups.empty()) {
    auto g = resolve_group("", "default");
    if (!g.ok()) return g.error();
    groups.push_back(g->id);
  }
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  std::optional<PlacementGroupInfo> group;
  if (!req.placement_group.empty()) {
    auto pgs = placement_groups();
    if (!pgs.ok()) return pgs.error();
    for (const auto& pg : *pgs) {
      if (pg.name == req.placement_group)
        group = PlacementGroupInfo{pg.name, pg.strategy, pg.partition_count};
    }
    if (!group)
      return ec2_error("InvalidPlacementGroup.Unknown",
                       fmt::format("The Placement Group '{}' is unknown", req.placement_group));
  }
  uint64_t disk_mib = image->disk_mib;
  if (req.root_volume_gib) {
    if (req.root_volume_gib * 1024 < image->disk_mib || req.root_volume_gib > 16384)
      return ec2_error("InvalidParameterValue",
                       fmt::format("Volume of {} GiB is smaller than the image's root disk "
                                   "({} MiB) or larger than 16384 GiB",
                                   req.root_volume_gib, image->disk_mib));
    disk_mib = req.root_volume_gib * 1024;
  }

  // The subnet: the one named, or the one holding the PrivateIpAddress, or (neither) the
  // default subnet of the zone each instance is placed in.
  std::optional<SubnetRecord> fixed_subnet;
  std::optional<uint32_t> fixed_ip;
  std::map<std::string, SubnetRecord> default_subnets;  // by zone
  {
    auto all = subnets();
    if (!all.ok()) return all.error();
    for (const auto& s : *all) {
      if (s.default_for_az) default_subnets[s.zone] = s;
    }
  }
  if (!req.private_ip.empty()) {
    fixed_ip = parse_ipv4(req.private_ip);
    if (!fixed_ip)
      return ec2_error("InvalidParameterValue",
                       fmt::format("Invalid value '{}' for PrivateIpAddress: not an IPv4 address",
                                   req.private_ip.substr(0, 64)));
    if (req.min_count != 1 || req.max_count != 1)
      return ec2_error("InvalidParameterCombination",
                       "PrivateIpAddress can be given only with MinCount and MaxCount 1");
  }
  if (!req.subnet_id.empty()) {
    auto s = subnet(req.subnet_id);
    if (!s.ok()) return s.error();
    fixed_subnet = *s;
  } else if (fixed_ip) {
    for (const auto& [zone, s] : default_subnets) {
      auto c = parse_cidr(s.cidr_block);
      if (c && c->contains(*fixed_ip) && (req.zone.empty() || req.zone == zone)) fixed_subnet = s;
    }
    if (!fixed_subnet)
      return ec2_error("InvalidParameterValue",
                       fmt::format("Address {} is in no default subnet{}: give its SubnetId",
                                   req.private_ip, req.zone.empty() ? "" : " of " + req.zone));
  } else if (!req.zone.empty() && !default_subnets.count(req.zone)) {
    return ec2_error("InvalidParameterValue",
                     fmt::format("The zone {} has no default subnet: give a SubnetId", req.zone));
  }
  if (fixed_subnet) {
    if (!req.zone.empty() && req.zone != fixed_subnet->zone)
      return ec2_error("InvalidParameterValue",
                       fmt::format("Value ({}) for parameter availabilityZone is invalid. Subnet "
                                   "'{}' is in the availability zone {}",
                                   req.zone, fixed_subnet->id, fixed_subnet->zone));
    auto c = parse_cidr(fixed_subnet->cidr_block);
    if (!c) return from_status(Status::internal("subnet " + fixed_subnet->id + " has no CIDR"));
    if (fixed_ip && !c->assignable(*fixed_ip))
      return ec2_error("InvalidParameterValue",
                       fmt::format("Address {} is not an instance address of subnet {} ({}: its "
                                   "first four and its last are reserved)",
                                   req.private_ip, fixed_subnet->id, fixed_subnet->cidr_block));
  }

  // One launch is one store transaction, which etcd caps at 128 operations (store.h): per
  // instance its record and its address (/addresses/SUBNET/IP, created compared on
  // revision 0), plus its hosts' allocations and the token: at most 40 + 40 + 40 + 1. A
  // larger MaxCount launches this many, as EC2 launches what the account's limits allow; a
  // larger MinCount is refused.
  if (req.min_count > kMaxPerLaunch)
    return ec2_error("InstanceLimitExceeded",
                     fmt::format("Nimbus launches at most {} instances per RunInstances (MinCount "
                                 "is {})",
                                 kMaxPerLaunch, req.min_count));
  const unsigned max_count = std::min(req.max_count, kMaxPerLaunch);
  PlacementRequest preq;
  preq.zone = fixed_subnet ? fixed_subnet->zone : req.zone;
  preq.vcpus = type->vcpus;
  preq.memory_mib = type->memory_mib;
  preq.disk_mib = disk_mib;
  preq.group = group;
  preq.instance_type = type->name;
  const std::string reservation_id = new_id("r");
  // The subnet every instance will be in, when that is known before placing: its used
  // addresses are read at the same time as the hosts (one round trip less on etcd).
  std::optional<std::string> known_subnet;
  if (fixed_subnet) {
    known_subnet = fixed_subnet->id;
  } else if (!req.zone.empty() && default_subnets.count(req.zone)) {
    known_subnet = default_subnets[req.zone].id;
  } else if (req.zone.empty() && default_subnets.size() == 1 && options_.zones.size() == 1) {
    known_subnet = default_subnets.begin()->second.id;
  }
  for (int attempt = 0; attempt < kClaimAttempts; ++attempt) {
    std::future<Ec2Result<std::set<uint32_t>>> used_read;
    if (known_subnet)
      used_read =
          std::async(std::launch::async, [this, id = *known_subnet] { return used_addresses(id); });
    std::map<std::string, std::pair<HostAllocation, int64_t>> allocs;
    std::map<std::string, HostRecord> records;
    auto cands = candidates(allocs, records, group.has_value());
    std::map<std::string, std::set<uint32_t>> used;  // addresses per subnet, as read now
    if (used_read.valid()) {
      auto u = used_read.get();
      if (!u.ok()) return u.error();
      used[*known_subnet] = std::move(*u);
    }
    if (!cands.ok()) return cands.error();
    // A retry lost a race with launches that read what this one read: they all chose the
    // same best host. Choosing at random among the few best spreads them (the first
    // attempt stays deterministic).
    preq.subset = retry_subset(attempt);
    preq.seed = attempt > 0 ? random_seed() : 0;
    Placement placed = place(*cands, preq, max_count, options_.strategy);
    if (placed.hosts.size() < req.min_count) {
      return ec2_error("InsufficientInstanceCapacity",
                       fmt::format("We currently do not have sufficient {} capacity{}: {}",
                                   type->name, req.zone.empty() ? "" : " in " + req.zone,
                                   placed.shortage.empty() ? "no host has room" : placed.shortage));
    }
    Reservation res;
    res.id = reservation_id;
    res.owner_id = options_.account_id;
    std::vector<Compare> compares;
    std::vector<Op> ops;
    std::set<std::string> touched;
    const std::string launch_time = iso_time_now();
    bool pool_full = false;
    std::optional<Ec2Error> address_error;
    for (size_t n = 0; n < placed.hosts.size(); ++n) {
      const std::string& host = placed.hosts[n];
      InstanceRecord i;
      i.id = new_id("i");
      i.reservation_id = reservation_id;
      i.owner_id = options_.account_id;
      i.image_id = image->id;
      i.instance_type = type->name;
      i.key_name = req.key_name;
      i.public_key = public_key;
      i.client_token = req.client_token;
      i.zone = records[host].zone;
      i.host = host;
      i.launch_index = static_cast<unsigned>(n);
      i.vcpus = type->vcpus;
      i.memory_mib = type->memory_mib;
      i.disk_mib = disk_mib;
      i.launch_time = launch_time;
      i.security_groups = groups;
      i.placement_group = req.placement_group;
      i.metadata_options = req.metadata_options;
      i.metadata_options_applied = false;  // its VM does not exist yet
      i.user_data = req.user_data;
      i.tags = req.instance_tags;
      HostAllocation& a = allocs[host].first;
      auto ip = free_public_ip(options_.public_prefix, records[host].index, a);
      if (!ip) {
        pool_full = true;
        break;
      }
      i.public_ip = *ip;
      // Its private address, from its subnet.
      auto zs = default_subnets.find(i.zone);
      if (!fixed_subnet && zs == default_subnets.end()) {
        address_error = ec2_error("InvalidParameterValue",
                                  fmt::format("The zone {} has no default subnet", i.zone));
        break;
      }
      const SubnetRecord& sub = fixed_subnet ? *fixed_subnet : zs->second;
      const auto cidr = parse_cidr(sub.cidr_block);
      if (!cidr) {
        address_error = from_status(Status::internal("subnet " + sub.id + " has no CIDR"));
        break;
      }
      if (!used.count(sub.id)) {
        auto u = used_addresses(sub.id);
        if (!u.ok()) return u.error();
        used[sub.id] = *u;
      }
      std::set<uint32_t>& taken = used[sub.id];
      std::optional<uint32_t> address;
      if (fixed_ip) {
        if (taken.count(*fixed_ip)) {
          address_error = ec2_error("InvalidIPAddress.InUse",
                                    fmt::format("Address {} is in use.", req.private_ip));
          break;
        }
        address = fixed_ip;
      } else {
        // The lowest free one (so a retry after a lost race takes the next one: no gaps).
        for (uint64_t off = 4; off + 1 < cidr->size(); ++off) {
          const uint32_t a = cidr->base + static_cast<uint32_t>(off);
          if (!taken.count(a)) {
            address = a;
            break;
          }
        }
      }
      if (!address) {
        address_error = ec2_error(
            "InsufficientFreeAddressesInSubnet",
            fmt::format("The subnet {} ({}) has no free address left", sub.id, sub.cidr_block));
        break;
      }
      taken.insert(*address);
      i.vpc_id = sub.vpc_id;
      i.subnet_id = sub.id;
      i.private_ip = format_ipv4(*address);
      compares.push_back({address_key(sub.id, i.private_ip), 0});
      ops.push_back({Op::Kind::kPut, address_key(sub.id, i.private_ip),
                     nlohmann::json{{"instance", i.id}}.dump()});
      a.instances[i.id] = Claim{type->vcpus, type->memory_mib, disk_mib, true, *ip};
      touched.insert(host);
      compares.push_back({instance_key(i.id), 0});
      ops.push_back({Op::Kind::kPut, instance_key(i.id), to_json(i).dump()});
      res.instances.push_back(std::move(i));
    }
    if (address_error) return *address_error;
    if (pool_full)
      return ec2_error("InsufficientInstanceCapacity",
                       "a host's public address pool is exhausted (253 instances per host)");
    for (const std::string& host : touched) {
      compares.push_back({alloc_key(host), allocs[host].second});
      ops.push_back({Op::Kind::kPut, alloc_key(host), to_json(allocs[host].first).dump()});
    }
    if (!req.client_token.empty()) {
      nlohmann::json t = {{"fingerprint", request_fingerprint(req)},
                          {"reservation_id", reservation_id},
                          {"instances", nlohmann::json::array()}};
      for (const auto& i : res.instances) t["instances"].push_back(i.id);
      compares.push_back({kTokensPrefix + req.client_token, 0});
      ops.push_back({Op::Kind::kPut, kTokensPrefix + req.client_token, t.dump()});
    }
    auto r = store_.txn(compares, ops);
    if (!r.ok()) return from_status(r.status());
    if (r->succeeded) {
      for (const auto& i : res.instances)
        spdlog::info("instance {}: placed on {} in {} ({}, {}, {} in {})", i.id, i.host, i.zone,
                     i.instance_type, i.public_ip, i.private_ip, i.subnet_id);
      kick();
      return res;
    }
    // Someone claimed on one of these hosts (or used the token) meanwhile: look again.
    if (!req.client_token.empty()) {
      auto replay = replay_token(req);
      if (replay.ok() || replay.error().code != "NotFound") return replay;
    }
    back_off(attempt);
  }
  return ec2_error("InsufficientInstanceCapacity",
                   "too many launches compete for the same hosts: try again", 400);
}

Status Cloud::release_claim(const InstanceRecord& inst, bool everything) {
  // A terminated instance's private address is free again (a stopped one keeps it).
  if (everything) {
    if (Status s = release_address(inst); !s.ok()) return s;
  }
  if (inst.host.empty()) return Status();
  bool unchanged = false;  // nothing claimed (any more): no write
  auto r = update(store_, alloc_key(inst.host),
                  [&](const std::optional<KeyValue>& kv) -> Result<std::optional<std::string>> {
                    unchanged = false;
                    auto a = kv ? allocation_from_json(kv->value)
                                : Result<HostAllocation>(HostAllocation{});
                    if (!a.ok()) return a.status();
                    auto it = a->instances.find(inst.id);
                    if (it == a->instances.end() || (!everything && !it->second.compute)) {
                      unchanged = true;
                      return Status::conflict("unchanged");
                    }
                    if (everything) {
                      a->instances.erase(it);
                    } else {
                      it->second.compute = false;
                    }
                    return std::optional<std::string>(to_json(*a).dump());
                  });
  if (!r.ok() && !unchanged) return r.status();
  return Status();
}

Ec2Result<bool> Cloud::claim_compute(const InstanceRecord& inst) {
  for (int attempt = 0; attempt < kClaimAttempts; ++attempt) {
    std::map<std::string, std::pair<HostAllocation, int64_t>> allocs;
    std::map<std::string, HostRecord> records;
    auto cands = candidates(allocs, records, false);
    if (!cands.ok()) return cands.error();
    std::vector<HostCandidate> mine;
    for (auto& c : *cands) {
      if (c.id != inst.host) continue;
      // Its own disk is already counted; what it may still hold of compute is not.
      auto& a = allocs[c.id].first;
      if (auto it = a.instances.find(inst.id); it != a.instances.end() && it->second.compute) {
        c.vcpus_allocated -= std::min<uint64_t>(c.vcpus_allocated, it->second.vcpus);
        c.memory_mib_allocated -=
            std::min<uint64_t>(c.memory_mib_allocated, it->second.memory_mib + c.vm_overhead_mib);
      }
      mine.push_back(c);
    }
    if (mine.empty())
      return ec2_error("InsufficientInstanceCapacity",
                       fmt::format("the host of {} ({}) has left the cloud", inst.id, inst.host));
    PlacementRequest preq;
    preq.zone = inst.zone;
    preq.vcpus = inst.vcpus;
    preq.memory_mib = inst.memory_mib;
    preq.disk_mib = 0;
    preq.instance_type = inst.instance_type;
    Placement p = place(mine, preq, 1, options_.strategy);
    if (p.hosts.empty())
      return ec2_error("InsufficientInstanceCapacity",
                       fmt::format("We currently do not have sufficient {} capacity on the host "
                                   "of {}: {}",
                                   inst.instance_type, inst.id, p.shortage));
    HostAllocation& a = allocs[inst.host].first;
    Claim& c = a.instances[inst.id];
    c.vcpus = inst.vcpus;
    c.memory_mib = inst.memory_mib;
    c.disk_mib = inst.disk_mib;
    c.compute = true;
    if (c.public_ip.empty()) {
      auto ip = free_public_ip(options_.public_prefix, records[inst.host].index, a);
      if (ip) c.public_ip = *ip;
    }
    auto r = store_.txn({{alloc_key(inst.host), allocs[inst.host].second}},
                        {{Op::Kind::kPut, alloc_key(inst.host), to_json(a).dump()}});
    if (!r.ok()) return from_status(r.status());
    if (r->succeeded) return true;
    back_off(attempt);
  }
  return ec2_error("InsufficientInstanceCapacity", "too many changes on one host: try again");
}

Ec2Result<std::vector<InstanceRecord>> Cloud::find_all(const std::vector<std::string>& ids) {
  std::vector<InstanceRecord> found;
  std::vector<std::string> missing;
  for (const auto& id : ids) {
    auto i = instance(id);
    if (!i.ok()) {
      if (i.error().code != "InvalidInstanceID.NotFound") return i.error();
      missing.push_back(id);
      continue;
    }
    found.push_back(*i);
  }
  if (!missing.empty()) return not_found(missing);
  return found;
}

Ec2Result<std::vector<StateChange>> Cloud::start_instances(const std::vector<std::string>& ids) {
  auto got = find_all(ids);
  if (!got.ok()) return got.error();
  const std::vector<InstanceRecord>& found = *got;
  for (const auto& i : found) {
    if (i.state != InstanceState::kStopped && i.state != InstanceState::kPending &&
        i.state != InstanceState::kRunning)
      return wrong_state(i, "started");
  }
  std::vector<StateChange> out;
  std::vector<InstanceRecord> claimed;
  for (const auto& i : found) {
    StateChange ch{i.id, i.state, i.state};
    if (i.state == InstanceState::kStopped) {
      auto c = claim_compute(i);
      if (!c.ok()) {
        for (const auto& back : claimed) (void)release_claim(back, false);
        return c.error();
      }
      claimed.push_back(i);
    }
    out.push_back(ch);
  }
  for (auto& ch : out) {
    if (ch.previous != InstanceState::kStopped) continue;
    Status s = update_instance(ch.instance_id, [&](InstanceRecord& r) {
      r.desired = Desired::kRunning;
      r.state = InstanceState::kPending;
      r.reason.clear();
      r.state_reason_code.clear();
      r.state_reason_message.clear();
      r.launch_time = iso_time_now();
      return true;
    });
    if (!s.ok()) return from_status(s);
    ch.current = InstanceState::kPending;
  }
  kick();
  return out;
}

Ec2Result<std::vector<StateChange>> Cloud::stop_instances(const std::vector<std::string>& ids,
                                                          bool force) {
  auto got = find_all(ids);
  if (!got.ok()) return got.error();
  const std::vector<InstanceRecord>& found = *got;
  for (const auto& i : found) {
    if (i.state == InstanceState::kShuttingDown || i.state == InstanceState::kTerminated)
      return wrong_state(i, "stopped");
  }
  std::vector<StateChange> out;
  for (const auto& i : found) {
    StateChange ch{i.id, i.state, i.state};
    Status s = update_instance(i.id, [&](InstanceRecord& r) {
      if (r.state == InstanceState::kStopped) return false;
      if (r.state == InstanceState::kStopping && !force) return false;
      r.desired = Desired::kStopped;
      r.force_stop = r.force_stop || force;
      r.state = InstanceState::kStopping;
      r.reason = fmt::format("User initiated ({})", iso_time_now());
      r.state_reason_code = "Client.UserInitiatedShutdown";
      r.state_reason_message = "Client.UserInitiatedShutdown: User initiated shutdown";
      ch.current = InstanceState::kStopping;
      return true;
    });
    if (!s.ok()) return from_status(s);
    out.push_back(ch);
  }
  kick();
  return out;
}

Ec2Result<std::vector<StateChange>> Cloud::terminate_instances(
    const std::vector<std::string>& ids) {
  auto got = find_all(ids);
  if (!got.ok()) return got.error();
  const std::vector<InstanceRecord>& found = *got;
  std::vector<StateChange> out;
  for (const auto& i : found) {
    StateChange ch{i.id, i.state, i.state};
    Status s = update_instance(i.id, [&](InstanceRecord& r) {
      if (r.state == InstanceState::kTerminated || r.state == InstanceState::kShuttingDown)
        return false;
      r.desired = Desired::kTerminated;
      r.state = InstanceState::kShuttingDown;
      r.reason = fmt::format("User initiated ({})", iso_time_now());
      r.state_reason_code = "Client.UserInitiatedShutdown";
      r.state_reason_message = "Client.UserInitiatedShutdown: User initiated shutdown";
      ch.current = InstanceState::kShuttingDown;
      return true;
    });
    if (!s.ok()) return from_status(s);
    out.push_back(ch);
  }
  kick();
  return out;
}

Ec2Result<bool> Cloud::reboot_instances(const std::vector<std::string>& ids) {
  auto got = find_all(ids);
  if (!got.ok()) return got.error();
  const std::vector<InstanceRecord>& found = *got;
  for (const auto& i : found) {
    if (i.state != InstanceState::kRunning && i.state != InstanceState::kPending)
      return wrong_state(i, "rebooted");
  }
  for (const auto& i : found) {
    Status s = update_instance(i.id, [](InstanceRecord& r) {
      ++r.reboot_requests;
      return true;
    });
    if (!s.ok()) return from_status(s);
  }
  kick();
  return true;
}

Ec2Result<bool> Cloud::modify_instance_type(const std::string& id, const std::string& type_name) {
  auto i = instance(id);
  if (!i.ok()) return i.error();
  const InstanceType* type = find_type(options_.instance_types, type_name);
  if (!type)
    return ec2_error("InvalidParameterValue",
                     fmt::format("Invalid value '{}' for InstanceType", type_name));
  if (i->state != InstanceState::kStopped)
    return ec2_error("IncorrectInstanceState",
                     fmt::format("The instance '{}' is not in the 'stopped' state (it is {})", id,
                                 state_name(i->state)));
  Status s = update_instance(id, [&](InstanceRecord& r) {
    if (r.state != InstanceState::kStopped) return false;
    r.instance_type = type->name;
    r.vcpus = type->vcpus;
    r.memory_mib = type->memory_mib;
    return true;
  });
  if (!s.ok()) return from_status(s);
  auto after = instance(id);
  if (after.ok() && after->instance_type != type->name)
    return ec2_error("IncorrectInstanceState",
                     fmt::format("The instance '{}' is not in the 'stopped' state", id));
  kick();
  return true;
}

Ec2Result<InstanceRecord> Cloud::modify_instance_metadata_options(
    const std::string& id, const MetadataOptionsChange& change) {
  auto i = instance(id);
  if (!i.ok()) return i.error();
  std::optional<InstanceState> refused;
  Status s = update_instance(id, [&](InstanceRecord& r) {
    refused.reset();
    if (r.state == InstanceState::kTerminated || r.state == InstanceState::kShuttingDown) {
      refused = r.state;
      return false;
    }
    InstanceMetadataOptions o = r.metadata_options;
    if (change.http_tokens) o.http_tokens = *change.http_tokens;
    if (change.http_endpoint) o.http_endpoint = *change.http_endpoint;
    if (change.instance_metadata_tags) o.instance_metadata_tags = *change.instance_metadata_tags;
    if (change.hop_limit) o.http_put_response_hop_limit = *change.hop_limit;
    if (o == r.metadata_options) return false;  // nothing new: as it was
    r.metadata_options = o;
    r.metadata_options_applied = false;
    return true;
  });
  if (!s.ok()) return from_status(s);
  if (refused)
    return ec2_error("IncorrectInstanceState",
                     fmt::format("The instance '{}' is not in a state from which its metadata "
                                 "options can be modified (it is {})",
                                 id, state_name(*refused)));
  kick();
  return instance(id);
}

}  // namespace nimbus::cloud
