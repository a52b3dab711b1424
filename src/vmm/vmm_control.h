// What can be asked of one VM, in types: the VMM's operations (Vmm implements them,
// RecordingVmm fakes them for the API's tests). Nothing here knows HTTP or JSON: errors are
// Status codes (InvalidArgument, NotFound, Conflict for "not in this state", Internal) and
// replies are structs; the API edge (api.h) turns a request into one call and the result
// into a status and a body.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "vmm/migration.h"
#include "vmm/vm_config.h"

namespace nimbus::vmm {

enum class VmState { kNotStarted, kRunning, kPaused, kStopped };
const char* state_name(VmState s);

// PUT/PATCH /machine-config.
struct MachineShape {
  unsigned vcpus = 1;
  uint64_t mem_mib = 256;
};

// PUT /boot-source: every field replaces the configuration's (empty: the default).
struct BootSource {
  std::string kernel, initrd, boot_args, firmware;
};

struct DriveStats {
  uint64_t read_requests = 0, write_requests = 0, flush_requests = 0;
  uint64_t bytes_read = 0, bytes_written = 0, errors = 0;
};

struct NicStats {
  uint64_t rx_packets = 0, rx_bytes = 0, rx_dropped = 0;
  uint64_t tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
};

struct DriveInfo {
  std::string id, path;
  std::optional<DriveStats> stats;  // while a machine runs
};

struct NicInfo {
  std::string id, mac;
  std::optional<NicStats> stats;  // while a machine runs
};

// One virtio-mmio slot in board order, with its Status register.
struct VirtioSlotInfo {
  size_t slot = 0;
  uint32_t device_id = 0;
  uint32_t status = 0;
  bool needs_reset = false;  // the guest broke a ring
};

struct VcpuInfo {
  unsigned index = 0;
  uint64_t instructions = 0;
  std::string state;  // running, idle or paused
};

// GET /.
struct InstanceInfo {
  std::string id;
  VmState state = VmState::kNotStarted;
  int64_t vmm_pid = 0;
  uint64_t boots = 0;
  std::string last_stop;  // poweroff, reboot, failure (code N), stopped, reboot failed: ..., or ""
  double uptime_s = 0;
  MachineShape shape;
  std::vector<VcpuInfo> vcpus;  // while a machine runs
  uint64_t vmm_rss_kib = 0;
  bool agent_ready = false;
  std::vector<DriveInfo> drives;
  std::vector<NicInfo> nics;
  std::vector<VirtioSlotInfo> virtio;
};

struct DriveResized {
  std::string id;
  uint64_t size_bytes = 0;
};

struct ShutdownResult {
  bool graceful = false;  // the guest powered off before the timeout
  double seconds = 0;
  std::string last_stop;
};

struct SnapshotCreated {
  std::string path;
  uint64_t bytes = 0, pages_stored = 0, pages_total = 0;
  double seconds = 0;
};

struct SnapshotLoaded {
  VmState state = VmState::kPaused;
  double seconds = 0;
};

// PUT /migration: move the running VM to a VMM waiting at `destination` (migration.h).
struct MigrateRequest {
  std::string destination;  // tcp:HOST:PORT or unix:PATH
  uint32_t max_downtime_ms = 100;
  uint32_t max_rounds = 30;
  bool compress = true;
  uint32_t max_bandwidth_mib_s = 0;  // 0: unlimited
};

// PUT /migration/incoming: wait at `listen` for a VM to arrive.
struct IncomingRequest {
  std::string listen;      // tcp:ADDR:PORT (PORT 0: any) or unix:PATH
  double timeout_s = 600;  // for the source to connect
};
struct IncomingStarted {
  std::string listen;  // the bound address
};

// Implementations serialise calls and decide from the VM's state whether each is allowed
// (Conflict if not). Configuration changes are refused while the VM is Running or Paused.
class VmmControl {
 public:
  virtual ~VmmControl() = default;
  virtual std::string id() = 0;
  virtual InstanceInfo info() = 0;
  virtual VmConfig config() = 0;

  virtual Status set_machine_shape(const MachineShape& shape) = 0;
  // Checks the boot files against the host (InvalidArgument, nothing changed) before
  // taking them.
  virtual Status set_boot_source(const BootSource& boot) = 0;
  // Adds the drive, or replaces the one with its id.
  virtual Status put_drive(const DriveConfig& drive) = 0;
  virtual Status delete_drive(const std::string& id) = 0;  // NotFound
  virtual Result<DriveResized> resize_drive(const std::string& id, uint64_t new_size) = 0;
  virtual Status put_nic(const NetConfig& nic) = 0;
  virtual Status delete_nic(const std::string& id) = 0;  // NotFound
  // Replaces the port forwards of user-mode NIC `id`, in any state (the one configuration
  // change a running VM takes): NotFound; InvalidArgument for a NIC that is not user-mode,
  // a set the configuration would refuse, or, while Running or Paused, a forward the NIC
  // cannot listen on (nothing changed then). Running or Paused, the NIC's backend applies
  // it at once; the configuration keeps it (GET /vm/config, snapshots, the next boot).
  virtual Status set_nic_forwards(const std::string& id,
                                  const std::vector<HostForward>& forwards) = 0;

  // The instance metadata service (config/metadata_config.h), in any state; served from the
  // next request on while the VM runs, kept in the configuration. PUT /mmds: the data tree,
  // checked by the caller (config::check_metadata_data); a VM without a metadata section
  // gets one with the default options. PATCH /mmds/config: the options; NotFound without a
  // metadata section.
  virtual Status set_metadata_data(const config::json& data) = 0;
  virtual Status set_metadata_options(const config::MetadataOptions& options) = 0;

  virtual Status start() = 0;
  // Asks the guest's agent to power off and returns at once.
  virtual Status send_ctrl_alt_del() = 0;
  // Asks the guest to power off, waits up to `timeout_s`, then stops it hard.
  virtual Result<ShutdownResult> shutdown(double timeout_s) = 0;
  virtual Status stop() = 0;
  virtual Status pause() = 0;
  virtual Status resume() = 0;
  virtual Result<SnapshotCreated> snapshot_create(const std::string& path) = 0;  // VM paused
  virtual Result<SnapshotLoaded> snapshot_load(const std::string& path, bool resume) = 0;

  // Live migration (migration.h). migrate: Running, no migration active; returns once the
  // migration runs in the background (its progress in migration_status). migrate_incoming:
  // NotStarted or Stopped; listens and returns the bound address. migration_cancel:
  // NotFound when none is active.
  virtual Status migrate(const MigrateRequest& request) = 0;
  virtual Result<IncomingStarted> migrate_incoming(const IncomingRequest& request) = 0;
  virtual migration::Progress migration_status() = 0;
  virtual Status migration_cancel() = 0;
};

}  // namespace nimbus::vmm
