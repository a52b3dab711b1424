// Host liveness shared by every control plane replica, on a store with leases and watches
// (etcd): a heartbeat (to any replica) keeps /alive/HOST attached to a lease of the host
// timeout; when the host stops, etcd deletes the key as the lease expires, and every
// replica, watching /alive/, sees the host go down at the same moment. The key's value is
// the VM list the host last reported, put again only when it changed (a heartbeat that
// changes nothing is a lease keep-alive, not a write).
#include <fmt/format.h>

#include <algorithm>

#include "cloud/cloud.h"
#include "common/log.h"

namespace nimbus::cloud {

namespace {

nlohmann::json parse_vms(const std::string& value) {
  auto j = nlohmann::json::parse(value, nullptr, false);
  return j.is_array() ? j : nlohmann::json::array();
}

}  // namespace

Cloud::~Cloud() {
  {
    std::lock_guard lock(watch_mu_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (liveness_thread_.joinable()) liveness_thread_.join();
  std::unique_ptr<Watch> w;
  {
    std::lock_guard lock(watch_mu_);
    w = std::move(watch_);
  }
  w.reset();  // outside watch_mu_: its callback may be waiting for it
}

Status Cloud::start_liveness() {
  if (shared_liveness_) return Status();
  Status s = watch_liveness();
  if (s.code() == Code::kUnimplemented) return Status();  // SQLite: liveness in memory
  if (!s.ok()) return s;
  shared_liveness_ = true;
  liveness_thread_ = std::thread([this] { liveness_loop(); });
  return Status();
}

Status Cloud::watch_liveness() {
  // The revision first, then the list: the watch replays from just after that revision,
  // so whatever changed during the list comes again (applying a change twice is harmless).
  {
    std::lock_guard lock(watch_mu_);
    watch_failed_ = false;  // before the watch starts: an error it reports at once counts
  }
  auto now = store_.txn({}, {});
  if (!now.ok()) return now.status();
  auto listed = store_.list(kAlivePrefix);
  if (!listed.ok()) return listed.status();
  const size_t plen = std::string(kAlivePrefix).size();
  auto w = store_.watch(
      kAlivePrefix, now->revision + 1, [this, plen](Result<std::vector<WatchEvent>> events) {
        if (!events.ok()) {
          spdlog::warn("host liveness watch: {}; listing again", events.message());
          std::lock_guard lock(watch_mu_);
          watch_failed_ = true;
          watch_cv_.notify_all();
          return;
        }
        for (const WatchEvent& e : *events) {
          if (e.kv.key.size() <= plen) continue;
          apply_alive(e.kv.key.substr(plen), e.type == WatchEvent::Type::kPut, e.kv.value,
                      e.kv.mod_revision);
        }
      });
  if (!w.ok()) return w.status();
  // What the list says replaces what was known: a host whose key is gone is down.
  std::set<std::string> present;
  for (const KeyValue& kv : *listed) {
    if (kv.key.size() <= plen) continue;
    present.insert(kv.key.substr(plen));
    apply_alive(kv.key.substr(plen), true, kv.value, kv.mod_revision);
  }
  std::vector<std::string> gone;
  {
    std::lock_guard lock(mu_);
    for (const auto& [host, l] : liveness_)
      if (!l.down && !present.count(host)) gone.push_back(host);
  }
  for (const std::string& host : gone) apply_alive(host, false, "", now->revision);
  std::unique_ptr<Watch> old;
  {
    std::lock_guard lock(watch_mu_);
    old = std::move(watch_);
    watch_ = std::move(*w);
  }
  return Status();
}

void Cloud::liveness_loop() {
  std::unique_lock lock(watch_mu_);
  while (!stopping_) {
    watch_cv_.wait(lock, [&] { return stopping_ || watch_failed_; });
    if (stopping_) break;
    // Drop the ended watch (outside the lock: destroying it joins its thread), then list
    // and watch again; a store that cannot be reached is tried again every second.
    std::unique_ptr<Watch> ended = std::move(watch_);
    lock.unlock();
    ended.reset();
    Status s = watch_liveness();
    lock.lock();
    if (!s.ok()) {
      spdlog::warn("host liveness: cannot list and watch {}: {}", kAlivePrefix, s.message());
      watch_failed_ = true;
      watch_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
    }
  }
}

void Cloud::apply_alive(const std::string& host, bool alive, const std::string& value,
                        int64_t revision) {
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    auto [it, fresh] = liveness_.try_emplace(host);
    HostLiveness& l = it->second;
    if (!fresh && revision < l.revision) return;  // older than what is known
    if (alive) {
      if (!fresh && l.down) spdlog::info("host {} is back", host);
      changed = fresh || l.down;
      l.down = false;
      l.vms = parse_vms(value);
      l.last_seen = clock_();
    } else {
      if (fresh) l.last_seen = clock_();
      if (!l.down) spdlog::warn("host {} is down (its liveness lease ended)", host);
      changed = !l.down;
      l.down = true;
    }
    l.revision = revision;
  }
  if (changed) kick();
}

Status Cloud::refresh_alive_key(const std::string& host, const nlohmann::json& vms) {
  const std::string value = vms.dump();
  const int64_t ttl_s = std::max<int64_t>(
      1,
      (std::chrono::duration_cast<std::chrono::milliseconds>(options_.host_timeout).count() + 999) /
          1000);
  HostLease* entry;
  {
    std::lock_guard map_lock(lease_mu_);
    auto& slot = leases_[host];
    if (!slot) slot = std::make_unique<HostLease>();
    entry = slot.get();  // entries are never removed
  }
  HostLease& l = *entry;
  std::lock_guard lease_lock(l.mu);
  int64_t watched = 0;
  {
    std::lock_guard lock(mu_);
    if (auto it = liveness_.find(host); it != liveness_.end()) watched = it->second.revision;
  }
  // Put again when the value changed, when this replica has no lease for the host yet, or
  // when someone else wrote the key since (another replica took the host's heartbeats: the
  // key is on its lease now, which nobody keeps alive once the host came back here).
  bool need_put = l.lease == 0 || l.value != value || watched > l.put_revision;
  if (l.lease != 0) {
    auto kept = store_.lease_keep_alive(l.lease);
    if (kept.code() == Code::kNotFound) {
      l.lease = 0;  // expired (the host was down) or revoked
    } else if (!kept.ok()) {
      return kept.status();
    }
  }
  if (l.lease == 0) {
    auto granted = store_.lease_grant(ttl_s);
    if (!granted.ok()) return granted.status();
    l.lease = *granted;
    need_put = true;
  }
  if (!need_put) return Status();
  auto r = store_.txn({}, {Op{Op::Kind::kPut, kAlivePrefix + host, value, l.lease}});
  if (!r.ok()) {
    if (r.code() == Code::kNotFound) l.lease = 0;  // the lease ended meanwhile
    return r.status();
  }
  l.value = value;
  l.put_revision = r->revision;
  return Status();
}

}  // namespace nimbus::cloud
