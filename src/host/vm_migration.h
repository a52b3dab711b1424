// Live migration of a VM between two nimbusd (docs/nimbusd.md, "Live migration").
//
// Source (migrate): asks the target nimbusd to prepare the VM (POST /v1/vms/incoming), tells
// its own VMM to send it there (PUT /migration), polls until completed, failed or timed out;
// on completed commits the target's VM (POST .../incoming/commit) and deletes its own copy;
// otherwise the VM keeps running here and the target's half-made VM is removed (DELETE
// .../incoming).
//
// Target (prepare_incoming, commit_incoming, abort_incoming): the VM is created as at create
// (capacity, ports, name, network address checked first), with a fresh overlay of this
// host's copy of the image and the guest's MACs, and its VMM started waiting for the
// migration (`--incoming tcp:ADDR:0`). The VM is busy ("incoming") until it is committed
// (its VMM runs the guest: an ordinary running VM) or removed. check_incoming() does either
// by itself when the VMM says so (completed, failed, ended) or the time is up, so a source
// that went away leaves nothing behind; a watcher thread calls it (unless the monitor is
// off: monitor_interval_ms 0, the unit tests call it).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "host/vm_runtime.h"

namespace nimbus::host {

// The target nimbusd as the source sees it. Errors keep the target's code (Conflict,
// InsufficientCapacity, ...) or the transport's (Unavailable, DeadlineExceeded).
class MigrationPeer {
 public:
  virtual ~MigrationPeer() = default;
  virtual Result<nlohmann::json> prepare(const nlohmann::json& incoming) = 0;  // {listen, vm}
  virtual Result<nlohmann::json> commit(const std::string& name) = 0;          // the vm object
  virtual Status abort(const std::string& name) = 0;
};

using MigrationPeerFactory = std::function<Result<std::unique_ptr<MigrationPeer>>(
    const std::string& target, const std::string& token)>;

// The real peer: the target's TCP API through HostApiClient.
Result<std::unique_ptr<MigrationPeer>> http_migration_peer(const std::string& target,
                                                           const std::string& token);

// The incoming request's body for `vm` (what the target needs to make it again).
nlohmann::json incoming_body(const VmRecord& vm, const ImageInfo& image, unsigned timeout_s);

// Parses POST /v1/vms/incoming and POST /v1/vms/NAME/migrate bodies (the create request's
// parser does the VM's own fields).
Result<IncomingRequest> parse_incoming_request(const nlohmann::json& j);
Result<MigrateRequest> parse_migrate_request(const nlohmann::json& j);
nlohmann::json to_json(const MigrateResult& r);

class VmMigration {
 public:
  VmMigration(VmRuntime& rt, MigrationPeerFactory peers);
  ~VmMigration();  // stops the watchers
  VmMigration(const VmMigration&) = delete;
  VmMigration& operator=(const VmMigration&) = delete;

  Result<MigrateResult> migrate(const std::string& name, const MigrateRequest& req);
  Result<IncomingResult> prepare_incoming(const IncomingRequest& req);
  Result<VmInfo> commit_incoming(const std::string& name);
  Status abort_incoming(const std::string& name);
  // One look at an incoming VM: commits it when its VMM runs the guest, removes it when
  // the migration failed, the VMM ended or its time is up. True when it is no longer
  // incoming (committed, removed, or not there).
  bool check_incoming(const std::string& name);

  // How the target nimbusd is reached (tests put the target's router in).
  MigrationPeerFactory& peers() { return peers_; }
  // How often the source polls its VMM (tests make it 0).
  unsigned poll_ms = 20;

 private:
  // Marks an incoming VM busy with `op` (from "incoming"): NotFound, Conflict.
  Result<VmRecord> claim_incoming(const std::string& name, const std::string& op);
  void unclaim(const std::string& name);  // back to "incoming"
  // Kills its VMM, removes its directory, cgroup, row and busy mark.
  void remove_incoming(const VmRecord& vm, const std::string& why);
  Result<VmInfo> commit_locked_out(VmRecord vm);
  void set_progress(const std::string& name, const nlohmann::json& m);
  void watch(const std::string& name);

  VmRuntime& rt_;
  MigrationPeerFactory peers_;
  std::mutex watch_mu_;
  struct Watcher {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Watcher> watchers_;  // finished ones are joined when the next one starts
  std::atomic<bool> stopping_{false};
  std::mutex deadline_mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> deadlines_;
};

}  // namespace nimbus::host
