// Leader election among control plane replicas sharing one store, on the store's leases
// (etcd's). nimbus-cloud (main.cpp) runs its reconciler and image builder only while it
// leads (key /leader, TTL 3 s); every replica serves the whole API (its writes are txns
// compared on revisions, safe from any replica).
//
// The leader holds `key` (value: its id) attached to a lease of `ttl` it keeps alive every
// ttl/3. The others try to create the key (a txn on mod_revision 0) every ttl/3, so they
// take over at most about ttl + ttl/3 after the leader died (etcd deletes the key when the
// lease expires), at once when it stepped down (stop() revokes the lease). A leader that
// cannot renew its lease for `ttl` steps down by itself before anyone else can be elected
// (the lease may be gone). On a store without leases (SQLite: one control plane host) the
// one elector is the leader at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "cloud/store.h"

namespace nimbus::cloud {

class LeaderElector {
 public:
  // on_change(true) when this one became the leader, (false) when it stopped being it;
  // called on the elector's thread.
  LeaderElector(Store& store, std::string key, std::string id, std::chrono::seconds ttl,
                std::function<void(bool)> on_change = {});
  ~LeaderElector();  // stop()
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  void start();
  // Steps down (revokes the lease, so another takes over at once) and stops campaigning.
  void stop();
  bool is_leader() const { return leader_.load(); }

 private:
  void run();
  void set_leader(bool leader);
  bool sleep_for(std::chrono::milliseconds d);  // false: stopping

  Store& store_;
  const std::string key_, id_;
  const std::chrono::seconds ttl_;
  std::function<void(bool)> on_change_;
  std::atomic<bool> leader_{false};
  int64_t lease_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace nimbus::cloud
