#include "vmm/vmm.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "backends/block/disk_resize.h"
#include "devices/virtio/blk/virtio_blk.h"
#include "devices/virtio/console/virtio_console.h"
#include "devices/virtio/net/virtio_net.h"
#include "machine/snapshot/snapshot_file.h"
#include "vmm/config_edits.h"
#include "vmm/machine_backends.h"

namespace nimbus::vmm {

namespace {

using Clock = std::chrono::steady_clock;
using machine::virt::ExitReason;
using machine::virt::VirtMachine;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A file or configuration the caller gave could not be used (a boot file, a disk image, a
// snapshot): the caller fixes it, so it is InvalidArgument (400) whatever the lower layer
// called it, as it always was.
Status unusable(const Status& s) { return s.with_code(Code::kInvalidArgument); }

uint64_t rss_kib() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

const char* exit_name(ExitReason r) {
  switch (r) {
    case ExitReason::kPoweroff:
      return "poweroff";
    case ExitReason::kReboot:
      return "reboot";
    case ExitReason::kFailure:
      return "failure";
    case ExitReason::kQuit:
    case ExitReason::kRunning:
      return "stopped";
  }
  return "stopped";
}

}  // namespace

const char* state_name(VmState s) {
  switch (s) {
    case VmState::kNotStarted:
      return "NotStarted";
    case VmState::kRunning:
      return "Running";
    case VmState::kPaused:
      return "Paused";
    case VmState::kStopped:
      return "Stopped";
  }
  return "?";
}

Vmm::Vmm(VmmOptions options, VmConfig config)
    : options_(std::move(options)),
      console_(options_.id,
               [this](const uint8_t* data, size_t len) {
                 std::lock_guard<std::mutex> lock(mu_);
                 if (machine_ == nullptr) return;
                 for (size_t i = 0; i < len; i++) machine_->console_input(data[i]);
               }),
      config_(std::move(config)) {}

Vmm::~Vmm() {
  end_migration();
  std::lock_guard<std::mutex> lock(mu_);
  if (machine_ != nullptr) {
    machine_->stop(ExitReason::kQuit);
    machine_->wait();
    machine_.reset();
    spdlog::info("vm {}: stopped (the VMM is exiting)", options_.id);
  }
}

VmState Vmm::state() {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

std::string Vmm::last_stop() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_stop_;
}

int Vmm::run() {
  for (;;) {
    bool stopped = false, quit = false;
    {
      std::unique_lock<std::mutex> lock(events_mu_);
      events_cv_.wait(lock, [this] { return machine_stopped_ || quit_; });
      stopped = std::exchange(machine_stopped_, false);
      quit = quit_;
    }
    if (stopped) reap();
    if (quit) break;
  }
  end_migration();
  std::lock_guard<std::mutex> lock(mu_);
  if (machine_ != nullptr) {
    machine_->stop(ExitReason::kQuit);
    machine_->wait();
    machine_.reset();
    state_ = VmState::kStopped;
    last_stop_ = "stopped";
    spdlog::info("vm {}: stopped (the VMM was told to quit)", options_.id);
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> ev(events_mu_);
  return exit_status_;
}

void Vmm::quit(int status) {
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    if (!quit_) exit_status_ = status;
    quit_ = true;
  }
  events_cv_.notify_all();
}

void Vmm::reap() {
  bool stopped_for_good = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (machine_ == nullptr || !machine_->stopped()) return;
  }
  // A migration uses the machine until its thread ends (a guest that powers off or
  // reboots meanwhile ends it; a completed one stopped the machine itself).
  end_migration();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (machine_ == nullptr || !machine_->stopped()) return;
    const ExitReason reason = machine_->wait();
    const uint32_t code = machine_->failure_code();
    machine_.reset();
    const bool reboot =
        reason == ExitReason::kReboot && !hard_stop_ && !options_.no_reboot && !migrated_;
    last_stop_ = migrated_ ? "migrated" : hard_stop_ ? "stopped" : exit_name(reason);
    migrated_ = false;
    disks_.clear();
    if (reason == ExitReason::kFailure) last_stop_ += fmt::format(" (code {})", code);
    hard_stop_ = false;
    if (reboot) {
      // As a real machine: the same hardware boots again.
      spdlog::info("vm {}: the guest rebooted; booting it again", options_.id);
      if (Status s = start_locked(); !s.ok()) {
        state_ = VmState::kStopped;
        last_stop_ = "reboot failed: " + s.message();
        spdlog::error("vm {}: stopped: {}", options_.id, last_stop_);
      }
    } else {
      state_ = VmState::kStopped;
      if (reason == ExitReason::kFailure) {
        spdlog::error("vm {}: stopped: {}", options_.id, last_stop_);
      } else {
        spdlog::info("vm {}: stopped ({})", options_.id, last_stop_);
      }
    }
    stopped_for_good = state_ == VmState::kStopped;
    cv_.notify_all();
  }
  if (stopped_for_good && options_.exit_on_stop) quit(0);
}

Result<machine::virt::VirtConfig> Vmm::machine_config_locked(bool restoring) {
  auto vc = to_virt_config(config_, options_.images_dir);
  if (!vc.ok()) return unusable(vc.status());
  vc->restoring = restoring;
  return vc;
}

Result<machine::virt::VirtBackends> Vmm::backends_locked() {
  if (config_.metadata && options_.imds == nullptr)
    return Status::invalid_argument("metadata: this VMM has no metadata service");
  if (options_.imds != nullptr) options_.imds->set(config_.metadata);
  auto b = open_backends(config_, options_.imds != nullptr ? options_.imds->link() : nullptr);
  if (!b.ok()) return unusable(b.status());
  // Every disk goes through a TrackedDisk, which a live migration asks what was written.
  disks_.clear();
  for (auto& disk : b->disks) {
    auto tracked = std::make_unique<backends::TrackedDisk>(std::move(disk));
    disks_.push_back(tracked.get());
    disk = std::move(tracked);
  }
  if (!options_.virtio_console_file.empty()) {
    auto sink = open_console_file(options_.virtio_console_file);
    if (!sink.ok()) return unusable(sink.status());
    b->virtio_console = std::move(*sink);
  } else if (options_.agent_channel) {
    // The guest agent's channel: a virtio console whose output we read.
    b->virtio_console = [this](const uint8_t* data, size_t len) { on_agent_output(data, len); };
  }
  return b;
}

Status Vmm::start_locked() {
  auto vc = machine_config_locked(false);
  if (!vc.ok()) {
    spdlog::error("vm {}: start failed: {}", options_.id, vc.message());
    return vc.status();
  }
  auto backends = backends_locked();
  if (!backends.ok()) {
    spdlog::error("vm {}: start failed: {}", options_.id, backends.message());
    return backends.status();
  }
  auto m = VirtMachine::create(*vc, std::move(*backends), [this](const uint8_t* data, size_t len) {
    console_.write(data, len);
  });
  if (!m.ok()) {
    spdlog::error("vm {}: start failed: {}", options_.id, m.message());
    return unusable(m.status());
  }
  machine_ = std::move(*m);
  watch_machine_locked();
  {
    std::lock_guard<std::mutex> lock(agent_mu_);
    agent_ready_ = false;
    agent_line_.clear();
  }
  state_ = VmState::kRunning;
  started_at_ = Clock::now();
  boots_++;
  machine_->start();
  cv_.notify_all();
  spdlog::info("vm {}: started (boot {}: {} vCPUs, {} MiB, {} drives, {} NICs)", options_.id,
               boots_, config_.vcpus, config_.mem_mib, config_.drives.size(), config_.nics.size());
  return Status();
}

void Vmm::watch_machine_locked() {
  machine_->set_on_stop([this] {
    {
      std::lock_guard<std::mutex> lock(events_mu_);
      machine_stopped_ = true;
    }
    events_cv_.notify_all();
  });
}

void Vmm::on_agent_output(const uint8_t* data, size_t len) {
  std::lock_guard<std::mutex> lock(agent_mu_);
  for (size_t i = 0; i < len; i++) {
    const char c = static_cast<char>(data[i]);
    if (c == '\n') {
      if (agent_line_ == "nimbus-agent: ready" || agent_line_ == "nimbus-agent: pong")
        agent_ready_ = true;
      agent_line_.clear();
    } else if (c != '\r' && agent_line_.size() < 256) {
      agent_line_ += c;
    }
  }
}

void Vmm::send_agent_command(const std::string& command) {
  const std::string line = command + "\n";
  if (auto* agent = machine_->virtio_device_of<devices::VirtioConsole>(); agent != nullptr) {
    agent->push_input(reinterpret_cast<const uint8_t*>(line.data()), line.size());
  } else {
    spdlog::warn("vm {}: the guest has no agent channel (virtio console); '{}' not sent",
                 options_.id, command);
  }
}

bool Vmm::wait_stopped(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds timeout) {
  return cv_.wait_for(lock, timeout,
                      [this] { return state_ != VmState::kRunning && state_ != VmState::kPaused; });
}

InstanceInfo Vmm::info() {
  std::lock_guard<std::mutex> lock(mu_);
  InstanceInfo info;
  info.id = options_.id;
  info.state = state_;
  info.vmm_pid = getpid();
  info.boots = boots_;
  info.last_stop = last_stop_;
  const bool live = machine_ != nullptr;
  info.uptime_s = live ? seconds_since(started_at_) : 0.0;
  info.shape = {config_.vcpus, config_.mem_mib};
  if (live) {
    for (unsigned i = 0; i < config_.vcpus; i++) {
      info.vcpus.push_back({i, machine_->hart_instret(i),
                            state_ == VmState::kPaused  ? "paused"
                            : machine_->hart_running(i) ? "running"
                                                        : "idle"});
    }
  }
  info.vmm_rss_kib = rss_kib();
  {
    std::lock_guard<std::mutex> agent(agent_mu_);
    info.agent_ready = live && agent_ready_;
  }
  device_info_locked(info);
  return info;
}

void Vmm::device_info_locked(InstanceInfo& info) {
  // The n-th drive is the n-th virtio-blk device, the n-th NIC the n-th virtio-net.
  for (size_t i = 0; i < config_.drives.size(); i++) {
    DriveInfo d{config_.drives[i].id, config_.drives[i].path, std::nullopt};
    auto* blk = machine_ ? machine_->virtio_device_of<devices::VirtioBlk>(i) : nullptr;
    if (blk != nullptr) {
      const devices::VirtioBlk::Stats st = blk->stats();
      d.stats = DriveStats{st.read_requests, st.write_requests, st.flush_requests,
                           st.bytes_read,    st.bytes_written,  st.errors};
    }
    info.drives.push_back(d);
  }
  for (size_t i = 0; i < config_.nics.size(); i++) {
    NicInfo n{config_.nics[i].id, config_.nics[i].mac, std::nullopt};
    auto* net = machine_ ? machine_->virtio_device_of<devices::VirtioNet>(i) : nullptr;
    if (net != nullptr) {
      const devices::VirtioNet::Stats st = net->stats();
      n.stats = NicStats{st.rx_packets, st.rx_bytes, st.rx_dropped,
                         st.tx_packets, st.tx_bytes, st.tx_dropped};
    }
    info.nics.push_back(n);
  }
  // Every virtio-mmio slot in board order, with its Status register: a guest that broke
  // a ring shows needs_reset (the hostile-guest test reads it here).
  for (size_t i = 0; machine_ && machine_->virtio_device(i) != nullptr; i++) {
    const uint32_t status = machine_->virtio_status(i);
    info.virtio.push_back({i, machine_->virtio_device(i)->device_id(), status,
                           (status & devices::VirtioMmio::kStatusNeedsReset) != 0});
  }
}

VmConfig Vmm::config() {
  std::lock_guard<std::mutex> lock(mu_);
  return config_;
}

Status Vmm::refuse_locked(const std::string& step, std::string why) {
  // Logged by the API edge as a refused request; here only the step for the debug log.
  spdlog::debug("vm {}: {} refused: {}", options_.id, step, why);
  return Status::conflict(std::move(why));
}

Status Vmm::edit_config(const std::string& what, const std::function<Status(VmConfig&)>& edit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == VmState::kRunning || state_ == VmState::kPaused) {
    return refuse_locked(
        what, fmt::format("the VM is {}: its configuration can change only before it starts or "
                          "after it stops",
                          state_name(state_)));
  }
  if (migration_active_) return refuse_locked(what, "a live migration is running");
  VmConfig edited = config_;
  if (Status s = edit(edited); !s.ok()) return s;
  config_ = std::move(edited);
  spdlog::info("vm {}: configured: {}", options_.id, what);
  return Status();
}

Status Vmm::set_machine_shape(const MachineShape& shape) {
  return edit_config(fmt::format("machine-config ({} vCPUs, {} MiB)", shape.vcpus, shape.mem_mib),
                     [&shape](VmConfig& c) {
                       apply_machine_shape(c, shape);
                       return Status();
                     });
}

Status Vmm::set_boot_source(const BootSource& boot) {
  return edit_config(fmt::format("boot-source (kernel '{}', initrd '{}')",
                                 boot.kernel.empty() ? "bundled" : boot.kernel, boot.initrd),
                     [&boot](VmConfig& c) { return apply_boot_source(c, boot); });
}

Status Vmm::put_drive(const DriveConfig& drive) {
  return edit_config(fmt::format("drive '{}' ({})", drive.id, drive.path), [&drive](VmConfig& c) {
    apply_drive(c, drive);
    return Status();
  });
}

Status Vmm::delete_drive(const std::string& id) {
  return edit_config(fmt::format("drive '{}' removed", id),
                     [&id](VmConfig& c) { return remove_drive(c, id); });
}

Status Vmm::put_nic(const NetConfig& nic) {
  return edit_config(fmt::format("network interface '{}' ({}, {} forwards)", nic.id, nic.mode,
                                 nic.forwards.size()),
                     [&nic](VmConfig& c) {
                       apply_nic(c, nic);
                       return Status();
                     });
}

Status Vmm::delete_nic(const std::string& id) {
  return edit_config(fmt::format("network interface '{}' removed", id),
                     [&id](VmConfig& c) { return remove_nic(c, id); });
}

Status Vmm::set_nic_forwards(const std::string& id, const std::vector<HostForward>& forwards) {
  std::lock_guard<std::mutex> lock(mu_);
  VmConfig edited = config_;
  if (Status s = apply_nic_forwards(edited, id, forwards); !s.ok()) return s;
  std::string forwards_text;
  for (const HostForward& f : forwards)
    forwards_text += (forwards_text.empty() ? "" : ", ") + config::format_forward(f);
  if (machine_ != nullptr) {
    // The n-th NIC is the n-th virtio-net device (as in device_info_locked).
    size_t index = 0;
    while (config_.nics[index].id != id) index++;
    auto* net = machine_->virtio_device_of<devices::VirtioNet>(index);
    if (net == nullptr)
      return Status::internal(fmt::format("network interface '{}' has no device", id));
    if (Status s = net->backend().set_forwards(forwards); !s.ok()) {
      return Status::invalid_argument(fmt::format("network interface '{}': {}", id, s.message()));
    }
  }
  config_ = std::move(edited);
  spdlog::info("vm {}: network interface '{}' forwards now [{}]{}", options_.id, id, forwards_text,
               machine_ != nullptr ? " (applied to the running machine)" : "");
  return Status();
}

Status Vmm::set_metadata_data(const config::json& data) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!config_.metadata) config_.metadata = config::MetadataConfig{};
  config_.metadata->data = data;
  // A machine running now serves it from the next request on.
  if (machine_ != nullptr && options_.imds != nullptr) options_.imds->set(config_.metadata);
  spdlog::info("vm {}: metadata data replaced ({} top-level entries)", options_.id, data.size());
  return Status();
}

Status Vmm::set_metadata_options(const config::MetadataOptions& options) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!config_.metadata)
    return Status::not_found("this VM has no metadata service (PUT /mmds first)");
  config_.metadata->options = options;
  if (machine_ != nullptr && options_.imds != nullptr) options_.imds->set(config_.metadata);
  spdlog::info("vm {}: metadata options now {}", options_.id, config::to_json(options).dump());
  return Status();
}

Result<DriveResized> Vmm::resize_drive(const std::string& id, uint64_t new_size) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == VmState::kRunning || state_ == VmState::kPaused) {
    return refuse_locked("resize", fmt::format("the VM is {}: stop it before resizing drive '{}'",
                                               state_name(state_), id));
  }
  for (const DriveConfig& d : config_.drives) {
    if (d.id != id) continue;
    if (d.read_only) return Status::invalid_argument(fmt::format("drive '{}' is read-only", id));
    if (Status s = backends::resize_disk(d.path, new_size); !s.ok()) {
      spdlog::error("vm {}: resizing drive '{}' failed: {}", options_.id, id, s.message());
      return unusable(s);
    }
    spdlog::info("vm {}: drive '{}' resized to {} bytes", options_.id, id, new_size);
    return DriveResized{id, new_size};
  }
  return Status::not_found(fmt::format("there is no drive '{}'", id));
}

Status Vmm::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (migration_active_) return refuse_locked("start", "a live migration is running");
  if (state_ == VmState::kRunning || state_ == VmState::kPaused) {
    return refuse_locked("start", fmt::format("the VM is already {}", state_name(state_)));
  }
  return start_locked();
}

Status Vmm::send_ctrl_alt_del() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != VmState::kRunning) {
    return refuse_locked("SendCtrlAltDel",
                         fmt::format("the VM is {}, not Running", state_name(state_)));
  }
  spdlog::info("vm {}: asked the guest to power off (SendCtrlAltDel)", options_.id);
  send_agent_command("poweroff");
  return Status();
}

Result<ShutdownResult> Vmm::shutdown(double timeout_s) {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_ != VmState::kRunning && state_ != VmState::kPaused) {
    return refuse_locked("shutdown", fmt::format("the VM is {}, not Running", state_name(state_)));
  }
  spdlog::info("vm {}: shutting down (the guest has {} s to power off)", options_.id, timeout_s);
  const auto t0 = Clock::now();
  if (state_ == VmState::kPaused) {
    machine_->resume();
    state_ = VmState::kRunning;
    spdlog::info("vm {}: resumed (to shut down)", options_.id);
  }
  send_agent_command("poweroff");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  if (wait_stopped(lock, timeout)) return ShutdownResult{true, seconds_since(t0), last_stop_};
  spdlog::warn("vm {}: the guest did not power off within {} s; stopping it hard", options_.id,
               timeout_s);
  if (machine_ != nullptr) {
    hard_stop_ = true;
    machine_->stop(ExitReason::kQuit);
  }
  if (!wait_stopped(lock, std::chrono::seconds(30))) {
    // As before codes: the reply still says what happened; the log says it is stuck.
    spdlog::error("vm {}: the VM did not stop within 30 s of a hard stop", options_.id);
  }
  return ShutdownResult{false, seconds_since(t0), last_stop_};
}

Status Vmm::stop() {
  std::unique_lock<std::mutex> lock(mu_);
  if (state_ != VmState::kRunning && state_ != VmState::kPaused) {
    return refuse_locked("stop", fmt::format("the VM is {}, not Running", state_name(state_)));
  }
  spdlog::info("vm {}: stopping (Stop)", options_.id);
  hard_stop_ = true;
  machine_->stop(ExitReason::kQuit);
  if (!wait_stopped(lock, std::chrono::seconds(30))) {
    spdlog::error("vm {}: the VM did not stop within 30 s", options_.id);
    return Status::internal("the VM did not stop");
  }
  return Status();
}

Status Vmm::pause() {
  std::lock_guard<std::mutex> lock(mu_);
  if (migration_active_) return refuse_locked("pause", "a live migration is running");
  if (state_ != VmState::kRunning) {
    return refuse_locked("pause", fmt::format("the VM is {}, not Running", state_name(state_)));
  }
  machine_->pause();
  state_ = VmState::kPaused;
  cv_.notify_all();
  spdlog::info("vm {}: paused", options_.id);
  return Status();
}

Status Vmm::resume() {
  std::lock_guard<std::mutex> lock(mu_);
  if (migration_active_) return refuse_locked("resume", "a live migration is running");
  if (state_ != VmState::kPaused) {
    return refuse_locked("resume", fmt::format("the VM is {}, not Paused", state_name(state_)));
  }
  machine_->resume();
  state_ = VmState::kRunning;
  cv_.notify_all();
  spdlog::info("vm {}: resumed", options_.id);
  return Status();
}

Result<SnapshotCreated> Vmm::snapshot_create(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != VmState::kPaused) {
    return refuse_locked(
        "snapshot",
        fmt::format("the VM is {}: pause it first (PATCH /vm {{\"state\": \"Paused\"}})",
                    state_name(state_)));
  }
  const auto t0 = Clock::now();
  StateWriter w;
  machine_->save_state(w);
  // As api.h's dump_json: a path that is not UTF-8 is written with U+FFFD, never throws.
  const std::string config_json =
      to_json(config_).dump(-1, ' ', false, json::error_handler_t::replace);
  auto stats = machine::write_snapshot(path, config_json, w.data(), machine_->guest_ram(),
                                       machine_->ram_size());
  if (!stats.ok()) {
    spdlog::error("vm {}: snapshot to '{}' failed: {}", options_.id, path, stats.message());
    return unusable(stats.status());
  }
  SnapshotCreated r{path, stats->file_bytes, stats->pages_stored, stats->pages_total,
                    seconds_since(t0)};
  spdlog::info("vm {}: snapshot written to '{}' ({} bytes, {} of {} pages, {:.2f} s)", options_.id,
               path, r.bytes, r.pages_stored, r.pages_total, r.seconds);
  return r;
}

Result<SnapshotLoaded> Vmm::snapshot_load(const std::string& path, bool resume) {
  std::lock_guard<std::mutex> lock(mu_);
  if (migration_active_) return refuse_locked("snapshot load", "a live migration is running");
  if (state_ != VmState::kNotStarted && state_ != VmState::kStopped) {
    return refuse_locked("snapshot load",
                         fmt::format("the VM is {}: a snapshot loads into a VMM whose VM is not "
                                     "running",
                                     state_name(state_)));
  }
  auto loaded = snapshot_load_locked(path, resume);
  if (!loaded.ok()) {
    spdlog::error("vm {}: restoring '{}' failed: {}", options_.id, path, loaded.message());
    return loaded;
  }
  spdlog::info("vm {}: restored from '{}' ({}, {:.2f} s)", options_.id, path,
               state_name(loaded->state), loaded->seconds);
  return loaded;
}

Result<SnapshotLoaded> Vmm::snapshot_load_locked(const std::string& path, bool resume) {
  const auto t0 = Clock::now();
  auto file = machine::SnapshotFile::open(path);
  if (!file.ok()) return unusable(file.status());
  const json j = json::parse((*file)->config_json(), nullptr, false);
  auto parsed = j.is_discarded() ? Result<VmConfig>(Status::error("not JSON")) : parse_vm_config(j);
  if (!parsed.ok()) {
    return Status::invalid_argument(
        fmt::format("snapshot '{}': its VM configuration is invalid: {}", path, parsed.message()));
  }
  if (((*parsed).mem_mib << 20) != (*file)->ram_size()) {
    return Status::invalid_argument(
        fmt::format("snapshot '{}': RAM size does not match its configuration", path));
  }
  const VmConfig previous = config_;
  config_ = *parsed;
  auto fail = [&](const std::string& message) {
    machine_.reset();
    config_ = previous;
    return Status::invalid_argument(message);
  };
  auto vc = machine_config_locked(true);
  if (!vc.ok()) return fail(fmt::format("snapshot '{}': {}", path, vc.message()));
  auto backends = backends_locked();
  if (!backends.ok()) return fail(fmt::format("snapshot '{}': {}", path, backends.message()));
  auto m = VirtMachine::create(*vc, std::move(*backends), [this](const uint8_t* data, size_t len) {
    console_.write(data, len);
  });
  if (!m.ok()) return fail(fmt::format("snapshot '{}': {}", path, m.message()));
  machine_ = std::move(*m);
  if (Status s = (*file)->read_ram(machine_->guest_ram()); !s.ok()) return fail(s.message());
  StateReader r((*file)->state());
  machine_->load_state(r);
  if (r.ok() && !r.at_end()) r.fail("trailing data after the machine state");
  if (!r.ok()) return fail(fmt::format("snapshot '{}': {}", path, r.status().message()));
  watch_machine_locked();
  machine_->pause();
  machine_->start();
  if (resume) machine_->resume();
  state_ = resume ? VmState::kRunning : VmState::kPaused;
  started_at_ = Clock::now();
  boots_++;
  {
    std::lock_guard<std::mutex> agent(agent_mu_);
    agent_ready_ = false;
    agent_line_.clear();
  }
  // The guest's agent, if it was running at the snapshot, answers (once resumed).
  send_agent_command("ping");
  cv_.notify_all();
  return SnapshotLoaded{state_, seconds_since(t0)};
}

}  // namespace nimbus::vmm
