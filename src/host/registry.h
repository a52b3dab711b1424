// nimbusd's state in SQLite: the VM definitions with their desired and actual state, and
// their snapshots. Every change is one transaction, committed before the caller goes on,
// so a daemon killed at any moment loses no VM: the next nimbusd reads the same rows and
// re-adopts the VM processes recorded in them.
//
// Not thread-safe by itself: the daemon serialises calls.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/devices.h"
#include "config/metadata_config.h"
#include "host/vm_network.h"

struct sqlite3;

namespace nimbus::host {

struct VmRecord {
  std::string name;
  std::string image;
  unsigned cpus = 1;
  uint64_t memory_mib = 256;
  uint64_t disk_mib = 0;
  // nimbusd's forwards always name their host address (0.0.0.0 unless the request gave
  // one) and never a guest address (the guest's DHCP address on eth0).
  std::vector<config::PortForward> forwards;
  std::string restart_policy = "no";      // no, on-failure, always
  std::string desired_state = "stopped";  // running, paused, stopped
  std::string state = "stopped";          // starting, running, paused, stopping, stopped, crashed
  unsigned slot = 0;       // 2..65534: host-network address, uid and MACs derive from it
  int64_t pid = 0;         // the VMM process, 0 when none
  uint64_t pid_start = 0;  // its start time in clock ticks (guards against pid reuse)
  uint32_t uid = 0;        // the VMM's uid (0: not sandboxed)
  std::string created_at, started_at;
  std::string last_exit;  // how the last VMM process ended
  unsigned restarts = 0;
  // The instance metadata its VMM serves (absent: none); kept across nimbusd and VM restarts.
  std::optional<config::MetadataConfig> metadata;
  // A private network for eth1 instead of the host network (vm_network.h); absent: hostnet.
  std::optional<VmNetwork> network;
  // The NICs' MACs when they are not derived from the slot (a VM migrated here keeps the
  // MACs its guest knows: vm_migration.h); "" for derived.
  std::string mac_user, mac_host;
};

struct SnapshotRecord {
  std::string vm, name, created_at;
  uint64_t size_bytes = 0;
  unsigned cpus = 1;
  uint64_t memory_mib = 0;
};

class Registry {
 public:
  // Opens (creating if needed) the database at `path` and brings its schema up to date.
  static Result<std::unique_ptr<Registry>> open(const std::string& path);
  ~Registry();

  Result<std::vector<VmRecord>> list_vms();
  Result<std::optional<VmRecord>> get_vm(const std::string& name);
  // Fails if the name or slot is taken.
  Status insert_vm(const VmRecord& vm);
  // Replaces the row of vm.name (which must exist).
  Status update_vm(const VmRecord& vm);
  // Removes the VM and its snapshots' rows.
  Status delete_vm(const std::string& name);

  Result<std::vector<SnapshotRecord>> list_snapshots(const std::string& vm);
  Status insert_snapshot(const SnapshotRecord& s);
  Status delete_snapshot(const std::string& vm, const std::string& name);

 private:
  explicit Registry(sqlite3* db) : db_(db) {}
  Status exec(const char* sql);
  sqlite3* db_;
};

// "2026-11-22T10:00:00Z" for now.
std::string utc_now();

}  // namespace nimbus::host
