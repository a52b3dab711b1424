#include "cloud/leader.h"

#include "common/log.h"

namespace nimbus::cloud {

using Clock = std::chrono::steady_clock;

LeaderElector::LeaderElector(Store& store, std::string key, std::string id,
                             std::chrono::seconds ttl, std::function<void(bool)> on_change)
    : store_(store),
      key_(std::move(key)),
      id_(std::move(id)),
      ttl_(ttl),
      on_change_(std::move(on_change)) {}

LeaderElector::~LeaderElector() { stop(); }

void LeaderElector::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { run(); });
}

void LeaderElector::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool LeaderElector::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [&] { return stop_; });
}

void LeaderElector::set_leader(bool leader) {
  if (leader_.exchange(leader) == leader) return;
  spdlog::info("{} {} the leader ({})", id_, leader ? "is now" : "is no longer", key_);
  if (on_change_) on_change_(leader);
}

void LeaderElector::run() {
  const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(ttl_) / 3;
  Clock::time_point renewed = Clock::now();
  do {
    if (lease_ == 0) {
      auto lease = store_.lease_grant(ttl_.count());
      if (lease.code() == Code::kUnimplemented) {
        set_leader(true);  // a store of one control plane host: nobody to elect against
        continue;
      }
      if (!lease.ok()) {
        spdlog::warn("leader election on {}: {}", key_, lease.message());
        continue;
      }
      lease_ = *lease;
      renewed = Clock::now();
    }
    if (leader_) {
      auto ttl = store_.lease_keep_alive(lease_);
      if (ttl.ok()) {
        renewed = Clock::now();
      } else if (ttl.code() == Code::kNotFound || Clock::now() - renewed >= ttl_) {
        // Expired, or not renewed for a whole TTL: someone else may hold the key now.
        spdlog::warn("leader election on {}: lost the lease: {}", key_, ttl.message());
        set_leader(false);
        lease_ = 0;
      }
      continue;
    }
    // A candidate: keep our own lease alive, and take the key when it is free.
    if (auto ttl = store_.lease_keep_alive(lease_); !ttl.ok()) {
      if (ttl.code() == Code::kNotFound) lease_ = 0;
      continue;
    }
    Op claim{Op::Kind::kPut, key_, id_, lease_};
    auto r = store_.txn({Compare{key_, 0}}, {claim});
    if (r.ok() && r->succeeded) {
      renewed = Clock::now();
      set_leader(true);
    }
  } while (sleep_for(leader_ ? period : std::max(period, std::chrono::milliseconds(100))));
  // Stepping down: revoking the lease deletes the key, so a candidate takes over at once.
  if (lease_ != 0) {
    if (Status s = store_.lease_revoke(lease_); !s.ok() && s.code() != Code::kNotFound)
      spdlog::warn("leader election on {}: revoking the lease: {}", key_, s.message());
    lease_ = 0;
  }
  set_leader(false);
}

}  // namespace nimbus::cloud
