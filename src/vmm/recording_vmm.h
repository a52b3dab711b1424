// A stand-in for the VMM behind the VM API, for the router's unit tests and its fuzz
// target: applies configuration edits to a plain VmConfig with the Vmm's own rules
// (config_edits.h), records the other calls, and answers every call with `refuse` when
// that is set (to check how the edge maps each code).
#pragma once

#include <optional>
#include <string>

#include "vmm/config_edits.h"
#include "vmm/vmm_control.h"

namespace nimbus::vmm {

class RecordingVmm : public VmmControl {
 public:
  std::string id() override { return "fake"; }
  InstanceInfo info() override {
    InstanceInfo i;
    i.id = id();
    i.state = running ? VmState::kRunning : VmState::kNotStarted;
    i.shape = {config_.vcpus, config_.mem_mib};
    return i;
  }
  VmConfig config() override { return config_; }

  Status set_machine_shape(const MachineShape& shape) override {
    return edit("machine-config", [&](VmConfig& c) {
      apply_machine_shape(c, shape);
      return Status();
    });
  }
  Status set_boot_source(const BootSource& boot) override {
    return edit("boot-source", [&](VmConfig& c) { return apply_boot_source(c, boot); });
  }
  Status put_drive(const DriveConfig& drive) override {
    return edit("put drive " + drive.id, [&](VmConfig& c) {
      apply_drive(c, drive);
      return Status();
    });
  }
  Status delete_drive(const std::string& id) override {
    return edit("delete drive " + id, [&](VmConfig& c) { return remove_drive(c, id); });
  }
  Status put_nic(const NetConfig& nic) override {
    return edit("put nic " + nic.id, [&](VmConfig& c) {
      apply_nic(c, nic);
      return Status();
    });
  }
  Status delete_nic(const std::string& id) override {
    return edit("delete nic " + id, [&](VmConfig& c) { return remove_nic(c, id); });
  }
  // Like the Vmm: allowed while running too (the fake has no backend to refuse it).
  Status set_nic_forwards(const std::string& id,
                          const std::vector<HostForward>& forwards) override {
    last = "forwards " + id + " " + std::to_string(forwards.size());
    if (refuse) return *refuse;
    VmConfig c = config_;
    if (Status s = apply_nic_forwards(c, id, forwards); !s.ok()) return s;
    config_ = c;
    return Status();
  }
  Result<DriveResized> resize_drive(const std::string& id, uint64_t size) override {
    last = "resize " + id + " " + std::to_string(size);
    if (refuse) return *refuse;
    return DriveResized{id, size};
  }
  Status set_metadata_data(const config::json& data) override {
    last = "mmds " + std::to_string(data.size());
    if (refuse) return *refuse;
    if (!config_.metadata) config_.metadata = config::MetadataConfig{};
    config_.metadata->data = data;
    return Status();
  }
  Status set_metadata_options(const config::MetadataOptions& options) override {
    last = "mmds config " + std::string(options.tokens_required ? "required" : "optional");
    if (refuse) return *refuse;
    if (!config_.metadata) return Status::not_found("no metadata");
    config_.metadata->options = options;
    return Status();
  }
  Status start() override { return record("start"); }
  Status send_ctrl_alt_del() override { return record("ctrl-alt-del"); }
  Result<ShutdownResult> shutdown(double timeout_s) override {
    last = "shutdown " + std::to_string(timeout_s);
    if (refuse) return *refuse;
    return ShutdownResult{true, 0.5, "poweroff"};
  }
  Status stop() override { return record("stop"); }
  Status pause() override { return record("pause"); }
  Status resume() override { return record("resume"); }
  Result<SnapshotCreated> snapshot_create(const std::string& path) override {
    last = "create " + path;
    if (refuse) return *refuse;
    return SnapshotCreated{path, 4096, 1, 2, 0.25};
  }
  Result<SnapshotLoaded> snapshot_load(const std::string& path, bool resume) override {
    last = "load " + path + (resume ? " resume" : "");
    if (refuse) return *refuse;
    return SnapshotLoaded{resume ? VmState::kRunning : VmState::kPaused, 0.25};
  }

  Status migrate(const MigrateRequest& request) override {
    return record("migrate " + request.destination + " " + std::to_string(request.max_downtime_ms) +
                  " " + std::to_string(request.max_rounds));
  }
  Result<IncomingStarted> migrate_incoming(const IncomingRequest& request) override {
    last = "incoming " + request.listen;
    if (refuse) return *refuse;
    return IncomingStarted{request.listen};
  }
  migration::Progress migration_status() override { return migration::Progress{}; }
  Status migration_cancel() override { return record("cancel migration"); }

  bool running = false;
  std::optional<Status> refuse;
  std::string last;
  VmConfig config_;

 private:
  Status record(const std::string& call) {
    last = call;
    return refuse ? *refuse : Status();
  }
  template <typename Edit>
  Status edit(const std::string& call, Edit&& apply) {
    last = call;
    if (refuse) return *refuse;
    if (running) return Status::conflict("running");
    VmConfig c = config_;
    if (Status s = apply(c); !s.ok()) return s;
    config_ = c;
    return Status();
  }
};

}  // namespace nimbus::vmm
