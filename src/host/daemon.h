// nimbusd's core: the VMs of one host, each a `nimbus vmm` process in its own cgroup.
//
// Daemon puts the pieces together and is what the API calls (HostOps): the VM service
// (vm_service.h: the operations), the supervisor (supervisor.h: monitor, recovery,
// restart policy) and the VM processes (vm_processes.h: the real ones, or a fake in unit
// tests), sharing one VmRuntime (vm_runtime.h). Every operation returns a typed result or
// a Status with a code; every refusal and failure is logged with the VM it concerns.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "host/host_checks.h"
#include "host/host_types.h"
#include "host/image_store.h"
#include "host/registry.h"
#include "host/vm_processes.h"
#include "host/vm_runtime.h"

namespace nimbus::host {

class VmService;
class Supervisor;
class ImageFetcher;
class VmMigration;

class Daemon : public HostOps {
 public:
  // `processes` null: the real VMM processes (LinuxVmProcesses), made by init().
  explicit Daemon(DaemonOptions options, std::shared_ptr<VmProcesses> processes = nullptr);
  ~Daemon() override;

  // Opens the state, imports the default image, detects cgroups, re-adopts the VM
  // processes that are still running and starts the monitor.
  Status init();
  void shutdown();               // stops the monitor; VM processes keep running
  std::string describe() const;  // one line for the log
  // One round of the monitor (the monitor thread's work; tests call it directly).
  void monitor_once();

  Result<HostInfo> host_info() override;
  Result<std::vector<ImageInfo>> list_images() override;
  Result<FetchedImage> fetch_image(const ImageFetchRequest& req) override;
  Result<std::vector<VmInfo>> list_vms() override;
  Result<VmInfo> get_vm(const std::string& name) override;
  Result<VmInfo> create_vm(const CreateRequest& req) override;
  Status delete_vm(const std::string& name) override;
  Result<VmInfo> start_vm(const std::string& name) override;
  Result<StopResult> stop_vm(const std::string& name, bool force, unsigned timeout_s) override;
  Result<VmInfo> restart_vm(const std::string& name, bool force, unsigned timeout_s) override;
  Result<VmInfo> pause_vm(const std::string& name) override;
  Result<VmInfo> resume_vm(const std::string& name) override;
  Result<VmInfo> resize_vm(const std::string& name, const ResizeRequest& req) override;
  Result<VmInfo> set_forwards(const std::string& name,
                              const std::vector<config::PortForward>& forwards) override;
  Result<VmInfo> set_metadata(const std::string& name, const MetadataUpdate& update) override;
  Result<std::vector<SnapshotInfo>> list_snapshots(const std::string& name) override;
  Result<SnapshotInfo> create_snapshot(const std::string& name, const std::string& snap) override;
  Result<VmInfo> restore_snapshot(const std::string& name, const std::string& snap) override;
  Status delete_snapshot(const std::string& name, const std::string& snap) override;
  Result<ImageInfo> export_image(const std::string& vm, const ExportImageRequest& req) override;
  Result<ImageFileRef> image_file(const std::string& image, const std::string& file) override;
  std::string metrics() override;
  Result<NetworkInfo> network_info() override;
  Result<NetworkInfo> set_tunnel_peers(const std::vector<backends::TunnelPeer>& peers) override;
  Result<MigrateResult> migrate_vm(const std::string& name, const MigrateRequest& req) override;
  Result<IncomingResult> prepare_incoming(const IncomingRequest& req) override;
  Result<VmInfo> commit_incoming(const std::string& name) override;
  Status abort_incoming(const std::string& name) override;
  // Live migration (after init): tests replace how the target nimbusd is reached.
  VmMigration& migration() { return *migration_; }
  // The tunnel's advertised endpoint ("" without one), for the heartbeat.
  std::string tunnel_endpoint() const;

 private:
  DaemonOptions options_;
  std::shared_ptr<VmProcesses> processes_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ImageStore> images_;
  std::unique_ptr<ImageFetcher> fetcher_;
  HostResources host_;
  std::string sandbox_off_;  // why the VMMs cannot run under their own uid ("" when they can)
  std::unique_ptr<backends::Tunnel> tunnel_;  // before rt_: the runtime points to it
  std::unique_ptr<VmRuntime> rt_;
  std::unique_ptr<VmService> service_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<VmMigration> migration_;  // after rt_: destroyed (watchers joined) first
};

}  // namespace nimbus::host
