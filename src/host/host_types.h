// What nimbusd's operations take and give back, as plain values: the VM service returns
// these (or a Status with a code) and only the API edge (host_api, host_json) turns them
// into HTTP statuses and JSON. HostOps is the set of operations the API calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "host/capacity.h"
#include "host/image_fetch.h"
#include "host/image_store.h"
#include "host/registry.h"
#include "host/vm_network.h"

namespace nimbus::host {

struct CreateRequest {
  std::string name;  // empty: generated
  std::string image = "default";
  unsigned cpus = 1;
  uint64_t memory_mib = 256;
  uint64_t disk_mib = 0;  // 0: the image's size
  std::vector<config::PortForward> forwards;
  std::string restart_policy = "no";
  bool start = true;
  std::optional<config::MetadataConfig> metadata;  // served by the VMM's IMDS
  std::optional<VmNetwork> network;  // eth1 on this private network, not the host network
};

// PUT /v1/vms/NAME/metadata: a new data tree and/or option fields over the current options
// (the defaults for a VM without metadata). Both already checked by the API.
struct MetadataUpdate {
  std::optional<config::json> data;
  config::json options = config::json::object();
};

struct ResizeRequest {
  std::optional<unsigned> cpus;
  std::optional<uint64_t> memory_mib;
  std::optional<uint64_t> disk_mib;
};

// What a VM uses now (its VMM process, its overlay, its devices' counters).
struct VmUsage {
  double cpu_seconds = 0;
  double memory_mib = 0;  // resident memory of the VMM process
  double disk_used_mib = 0;
  uint64_t disk_read_bytes = 0, disk_write_bytes = 0, net_rx_bytes = 0, net_tx_bytes = 0;
};

// One VM as the API shows it: its record plus what is derived from it.
struct VmInfo {
  VmRecord record;
  bool ready = false;  // the guest agent said ready (and the VM runs or is paused)
  std::string user_address, host_address;  // host_address "" on a private network
  std::string private_address;             // on a private network: its address (no prefix)
  std::string cgroup;                      // "" without cgroups
  std::string console_socket, console_log;
  std::optional<VmUsage> usage;  // only where asked for (list and get)
  // The VM's migration in progress, or the last one since nimbusd started (null: none).
  config::json migration;
};

struct StopResult {
  VmInfo vm;
  bool graceful = false;  // the guest shut down by itself
};

struct HostInfo {
  Capacity capacity;
  std::string hostname, version, state_dir, cgroup;
  bool sandbox = false;
  std::string sandbox_note;  // why VMMs do not run sandboxed ("" when they do)
  uint64_t vm_overhead_mib = 0;
  unsigned vms_total = 0, vms_running = 0;
};

using SnapshotInfo = SnapshotRecord;

// The tunnel of the private networks (GET /v1/network, PUT /v1/network/peers).
struct NetworkInfo {
  bool tunnel = false;           // --tunnel-listen given
  std::string listen, endpoint;  // bound and advertised "IP:PORT"
  std::vector<backends::TunnelPeer> peers;
  std::vector<uint32_t> vnis;  // the networks with a switch joined by the tunnel
  backends::Tunnel::Stats stats;
};

// POST /v1/vms/NAME/image: the VM's root disk as a new image of this host's store.
struct ExportImageRequest {
  std::string image;  // the new image's name
  std::string description;
  bool reboot = false;      // a running VM is stopped gracefully, exported and started again
  unsigned timeout_s = 30;  // for the graceful stop
};

// A file of an image, to serve (GET /v1/images/NAME/files/FILE).
struct ImageFileRef {
  std::string path;
  uint64_t size = 0;
};

// POST /v1/vms/NAME/migrate: move the running VM to another nimbusd (vm_migration.h).
struct MigrateRequest {
  std::string target;        // the target nimbusd's TCP API, "http://HOST:PORT"
  std::string target_token;  // its bearer token
  unsigned max_downtime_ms = 100;
  unsigned timeout_s = 300;
  // The forwards the VM has on the target (e.g. the target's public address); absent: its
  // current ones.
  std::optional<std::vector<config::PortForward>> forwards;
};

struct MigrateResult {
  std::string name, target;
  double downtime_ms = 0, total_ms = 0;
  uint64_t ram_bytes_sent = 0, disk_bytes_sent = 0, rounds = 0;
  config::json vm;      // the target's vm object
  std::string warning;  // the commit on the target failed (the VM runs there anyway)
};

// POST /v1/vms/incoming: a VM about to arrive from another nimbusd (vm_migration.h).
struct IncomingRequest {
  CreateRequest vm;                    // name required; start ignored
  std::string mac_user, mac_host;      // the guest's MACs, kept
  unsigned slot = 0;                   // the source's slot, taken when free (0: any)
  std::vector<ImageFile> image_files;  // the source image's recorded files (may be empty)
  uint64_t image_disk_bytes = 0;       // the size of the source image's disk file (0: unknown)
  unsigned timeout_s = 330;            // removed if not completed by then
};

struct IncomingResult {
  std::string listen;  // the target VMM's migration address, "tcp:ADDR:PORT"
  VmInfo vm;
};

// What the API layer calls (an interface so the router can be tested and fuzzed alone).
// A refused operation changes nothing; its Status says why, with a code.
class HostOps {
 public:
  virtual ~HostOps() = default;
  virtual Result<HostInfo> host_info() = 0;
  virtual Result<std::vector<ImageInfo>> list_images() = 0;
  // Fetches an image from the cloud nimbusd joined (image_fetch.h says what each code means).
  virtual Result<FetchedImage> fetch_image(const ImageFetchRequest& req) = 0;
  virtual Result<std::vector<VmInfo>> list_vms() = 0;
  virtual Result<VmInfo> get_vm(const std::string& name) = 0;
  virtual Result<VmInfo> create_vm(const CreateRequest& req) = 0;
  virtual Status delete_vm(const std::string& name) = 0;
  virtual Result<VmInfo> start_vm(const std::string& name) = 0;
  virtual Result<StopResult> stop_vm(const std::string& name, bool force, unsigned timeout_s) = 0;
  virtual Result<VmInfo> restart_vm(const std::string& name, bool force, unsigned timeout_s) = 0;
  virtual Result<VmInfo> pause_vm(const std::string& name) = 0;
  virtual Result<VmInfo> resume_vm(const std::string& name) = 0;
  virtual Result<VmInfo> resize_vm(const std::string& name, const ResizeRequest& req) = 0;
  // Replaces the VM's port forwards, live if its VMM runs (vm_service.h).
  virtual Result<VmInfo> set_forwards(const std::string& name,
                                      const std::vector<config::PortForward>& forwards) = 0;
  // Replaces the VM's metadata data and/or options, live if its VMM runs (vm_service.h).
  virtual Result<VmInfo> set_metadata(const std::string& name, const MetadataUpdate& update) = 0;
  virtual Result<std::vector<SnapshotInfo>> list_snapshots(const std::string& name) = 0;
  virtual Result<SnapshotInfo> create_snapshot(const std::string& name,
                                               const std::string& snap) = 0;
  virtual Result<VmInfo> restore_snapshot(const std::string& name, const std::string& snap) = 0;
  virtual Status delete_snapshot(const std::string& name, const std::string& snap) = 0;
  // The VM's root disk as a new standalone image (vm_service.h).
  virtual Result<ImageInfo> export_image(const std::string& vm, const ExportImageRequest& req) = 0;
  // One of an image's files, by name: NotFound unless the image lists it.
  virtual Result<ImageFileRef> image_file(const std::string& image, const std::string& file) = 0;
  virtual std::string metrics() = 0;  // Prometheus text
  // The tunnel between hosts' private networks, and its peer set (replaced whole; a
  // refused set changes nothing). Conflict when nimbusd runs without a tunnel.
  virtual Result<NetworkInfo> network_info() { return NetworkInfo{}; }
  virtual Result<NetworkInfo> set_tunnel_peers(const std::vector<backends::TunnelPeer>&) {
    return Status::conflict("nimbusd runs without a tunnel (--tunnel-listen)");
  }
  // Live migration (vm_migration.h): the source's side, and the target's three steps.
  virtual Result<MigrateResult> migrate_vm(const std::string&, const MigrateRequest&) {
    return Status::unimplemented("live migration is not available here");
  }
  virtual Result<IncomingResult> prepare_incoming(const IncomingRequest&) {
    return Status::unimplemented("live migration is not available here");
  }
  virtual Result<VmInfo> commit_incoming(const std::string&) {
    return Status::unimplemented("live migration is not available here");
  }
  virtual Status abort_incoming(const std::string&) {
    return Status::unimplemented("live migration is not available here");
  }
};

}  // namespace nimbus::host
