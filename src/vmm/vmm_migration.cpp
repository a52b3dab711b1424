// Vmm's side of live migration (migration.h): the source and target adapters over the
// machine, and the threads that run them.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net/virtio_net.h"
#include "vmm/vmm.h"

namespace nimbus::vmm {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using machine::virt::ExitReason;
using machine::virt::VirtMachine;

}  // namespace

// The running machine, seen by run_source. The machine stays while the migration runs:
// whatever would end it (reap, quit) first ends the migration (end_migration).
class Vmm::SourceAdapter final : public migration::SourceVm {
 public:
  SourceAdapter(Vmm& vmm, VirtMachine& m) : vmm_(vmm), m_(m) {}
  uint8_t* ram() override { return m_.guest_ram(); }
  uint64_t ram_size() override { return m_.ram_size(); }
  void start_dirty_log() override { m_.start_dirty_log(); }
  void stop_dirty_log() override { m_.stop_dirty_log(); }
  void take_dirty_pages(std::vector<uint64_t>& bitmap) override { m_.take_dirty_pages(bitmap); }
  std::vector<backends::TrackedDisk*> disks() override {
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    return vmm_.disks_;
  }
  std::string config_json() override {
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    return to_json(vmm_.config_).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  Status pause() override {
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    if (m_.stopped()) return Status::conflict("the guest stopped");
    m_.pause();
    return Status();
  }
  std::vector<uint8_t> save_state() override {
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    StateWriter w;
    m_.save_state(w);
    return w.data();
  }
  void resume() override {
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    m_.resume();
  }
  void release_host_resources() override { set_forwards(false); }
  void reclaim_host_resources() override { set_forwards(true); }

 private:
  // The user-mode NICs' forwards: off, or back to the configuration's.
  void set_forwards(bool on) {
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    for (size_t i = 0; i < vmm_.config_.nics.size(); i++) {
      const NetConfig& nic = vmm_.config_.nics[i];
      if (nic.forwards.empty()) continue;
      auto* net = m_.virtio_device_of<devices::VirtioNet>(i);
      if (net == nullptr) continue;
      Status s = net->backend().set_forwards(on ? nic.forwards : std::vector<HostForward>{});
      if (!s.ok())
        spdlog::warn("vm {}: migration: network interface '{}' forwards {}: {}", vmm_.options_.id,
                     nic.id, on ? "restored" : "released", s.message());
    }
  }
  Vmm& vmm_;
  VirtMachine& m_;
};

// The machine being filled, seen by run_target. It becomes machine_ only at start().
class Vmm::TargetAdapter final : public migration::TargetVm {
 public:
  explicit TargetAdapter(Vmm& vmm) : vmm_(vmm) {}

  Status prepare(const json& source_config, uint64_t ram_size,
                 const std::vector<uint64_t>& disk_sizes) override {
    auto source = parse_vm_config(source_config);
    if (!source.ok())
      return Status::invalid_argument("the source's configuration: " + source.message());
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    const VmConfig& mine = vmm_.config_;
    if (source->vcpus != mine.vcpus || source->mem_mib != mine.mem_mib ||
        (mine.mem_mib << 20) != ram_size)
      return Status::invalid_argument(fmt::format(
          "the source has {} vCPUs and {} MiB, this VM {} and {}: configure it the same",
          source->vcpus, source->mem_mib, mine.vcpus, mine.mem_mib));
    if (source->drives.size() != mine.drives.size() || disk_sizes.size() != mine.drives.size())
      return Status::invalid_argument(fmt::format("the source has {} drives, this VM {}",
                                                  source->drives.size(), mine.drives.size()));
    if (source->nics.size() != mine.nics.size())
      return Status::invalid_argument(
          fmt::format("the source has {} network interfaces, this VM {}", source->nics.size(),
                      mine.nics.size()));
    for (size_t i = 0; i < mine.nics.size(); i++) {
      if (source->nics[i].mac != mine.nics[i].mac)
        return Status::invalid_argument(
            fmt::format("network interface {}: the source's MAC is {}, this VM's {}", i,
                        source->nics[i].mac, mine.nics[i].mac));
    }
    for (size_t i = 0; i < mine.nics.size(); i++) {
      if (source->nics[i].mode != mine.nics[i].mode)
        return Status::invalid_argument(
            fmt::format("network interface {}: the source's is {}, this VM's {}", i,
                        source->nics[i].mode, mine.nics[i].mode));
    }
    if (source->entropy != mine.entropy || !source->metadata != !mine.metadata)
      return Status::invalid_argument("the source's devices differ from this VM's");
    auto vc = vmm_.machine_config_locked(true);
    if (!vc.ok()) return vc.status();
    // The forwards are bound only once the source let them go (start()).
    VmConfig without = mine;
    for (auto& nic : without.nics) nic.forwards.clear();
    std::swap(vmm_.config_, without);
    auto backends = vmm_.backends_locked();
    std::swap(vmm_.config_, without);
    if (!backends.ok()) return backends.status();
    disks_.clear();
    for (size_t i = 0; i < vmm_.disks_.size(); i++) {
      if (vmm_.disks_[i]->size() != disk_sizes[i])
        return Status::invalid_argument(
            fmt::format("drive '{}': the source's is {} bytes, this one {}", mine.drives[i].id,
                        disk_sizes[i], vmm_.disks_[i]->size()));
      disks_.push_back(vmm_.disks_[i]);
    }
    // The machine outlives this adapter: its output goes to the Vmm itself.
    Vmm* vmm = &vmm_;
    auto m = VirtMachine::create(*vc, std::move(*backends),
                                 [vmm](const uint8_t* d, size_t n) { vmm->console_.write(d, n); });
    if (!m.ok()) return m.status();
    machine_ = std::move(*m);
    return Status();
  }
  uint8_t* ram() override { return machine_->guest_ram(); }
  std::vector<backends::BlockBackend*> disks() override { return disks_; }
  Status load_state(const std::vector<uint8_t>& state) override {
    StateReader r(state);
    machine_->load_state(r);
    if (r.ok() && !r.at_end()) r.fail("trailing data after the machine state");
    if (!r.ok()) return Status::invalid_argument("the machine state: " + r.status().message());
    return Status();
  }
  Status start() override {
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    vmm_.machine_ = std::move(machine_);
    vmm_.watch_machine_locked();
    vmm_.machine_->pause();
    vmm_.machine_->start();
    vmm_.machine_->resume();
    vmm_.state_ = VmState::kRunning;
    vmm_.started_at_ = Clock::now();
    vmm_.boots_++;
    vmm_.last_stop_.clear();
    {
      std::lock_guard<std::mutex> agent(vmm_.agent_mu_);
      vmm_.agent_ready_ = false;
      vmm_.agent_line_.clear();
    }
    // Now that the source let them go: the forwards (a port still taken is logged; the
    // guest runs on without it).
    for (size_t i = 0; i < vmm_.config_.nics.size(); i++) {
      const NetConfig& nic = vmm_.config_.nics[i];
      if (nic.forwards.empty()) continue;
      auto* net = vmm_.machine_->virtio_device_of<devices::VirtioNet>(i);
      if (net == nullptr) continue;
      if (Status s = net->backend().set_forwards(nic.forwards); !s.ok())
        spdlog::error("vm {}: after the migration, network interface '{}' forwards: {}",
                      vmm_.options_.id, nic.id, s.message());
    }
    vmm_.send_agent_command("ping");
    vmm_.cv_.notify_all();
    return Status();
  }
  void discard() override {
    machine_.reset();
    disks_.clear();
    std::lock_guard<std::mutex> lock(vmm_.mu_);
    if (vmm_.machine_ == nullptr) vmm_.disks_.clear();
  }

 private:
  Vmm& vmm_;
  std::unique_ptr<VirtMachine> machine_;
  std::vector<backends::BlockBackend*> disks_;
};

bool Vmm::record_end(const Status& s, std::chrono::steady_clock::time_point t0) {
  const bool cancelled = migration_cancel_.load();
  migration_.update([&](migration::Progress& p) {
    p.state = s.ok() ? "completed" : cancelled ? "cancelled" : "failed";
    if (!s.ok()) p.error = s.message();
    p.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  });
  return cancelled;
}

Status Vmm::migrate(const MigrateRequest& request) {
  auto address = migration::parse_address(request.destination);
  if (!address.ok()) return address.status();
  if (request.max_downtime_ms == 0 || request.max_downtime_ms > 60'000)
    return Status::invalid_argument("max_downtime_ms must be 1-60000");
  if (request.max_rounds > 1000) return Status::invalid_argument("max_rounds must be 0-1000");
  std::lock_guard<std::mutex> lock(mu_);
  if (migration_active_) return refuse_locked("migrate", "a migration is already running");
  if (state_ != VmState::kRunning)
    return refuse_locked("migrate", fmt::format("the VM is {}, not Running", state_name(state_)));
  if (migration_thread_.joinable()) migration_thread_.join();  // the last one, ended
  migration_active_ = true;
  migration_cancel_ = false;
  migration::Progress p;
  p.role = "source";
  p.state = "active";
  p.phase = "connecting";
  migration_.set(p);
  spdlog::info("vm {}: migrating to {} (downtime budget {} ms, at most {} rounds)", options_.id,
               address->to_string(), request.max_downtime_ms, request.max_rounds);
  migration_thread_ = std::thread([this, request, a = *address] { source_thread(request, a); });
  return Status();
}

void Vmm::source_thread(MigrateRequest request, migration::Address address) {
  const auto t0 = Clock::now();
  auto finish = [&](const Status& s) {
    const bool cancelled = record_end(s, t0);
    std::lock_guard<std::mutex> lock(mu_);
    if (s.ok()) {
      const migration::Progress p = migration_.get();
      spdlog::info(
          "vm {}: migrated to {} in {:.0f} ms (downtime {:.1f} ms, {} rounds, {} pages, "
          "{} disk bytes, {} bytes on the wire)",
          options_.id, address.to_string(), p.total_ms, p.downtime_ms, p.round, p.ram_pages_sent,
          p.disk_bytes_sent, p.bytes_on_wire);
      // The VM lives on the target now: this machine must never run again.
      migrated_ = true;
      if (machine_ != nullptr) machine_->stop(ExitReason::kQuit);
    } else {
      spdlog::error("vm {}: migration to {} {}: {}; the VM runs on here", options_.id,
                    address.to_string(), cancelled ? "cancelled" : "failed", s.message());
    }
    migration_active_ = false;
    cv_.notify_all();
  };
  auto channel = migration::connect_to(address, 10'000);
  if (!channel.ok()) return finish(channel.status());
  VirtMachine* m = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    m = machine_.get();
  }
  if (m == nullptr) return finish(Status::conflict("the VM stopped"));
  {
    std::lock_guard<std::mutex> io(migration_io_mu_);
    migration_channel_ = channel->get();
    if (migration_cancel_) (*channel)->shutdown();
  }
  SourceAdapter adapter(*this, *m);
  migration::SourceOptions o{request.destination, request.max_downtime_ms, request.max_rounds,
                             request.compress, request.max_bandwidth_mib_s};
  Status s = migration::run_source(adapter, **channel, o, migration_, migration_cancel_);
  {
    std::lock_guard<std::mutex> io(migration_io_mu_);
    migration_channel_ = nullptr;
  }
  finish(s);
}

Result<IncomingStarted> Vmm::migrate_incoming(const IncomingRequest& request) {
  auto address = migration::parse_address(request.listen);
  if (!address.ok()) return address.status();
  if (!(request.timeout_s > 0 && request.timeout_s <= 86400))
    return Status::invalid_argument("timeout_s must be above 0 and at most 86400");
  std::lock_guard<std::mutex> lock(mu_);
  if (migration_active_) return refuse_locked("migrate", "a migration is already running");
  if (state_ != VmState::kNotStarted && state_ != VmState::kStopped)
    return refuse_locked("incoming migration",
                         fmt::format("the VM is {}: a VM arrives in a VMM whose VM is not running",
                                     state_name(state_)));
  auto listener = migration::listen_on(*address);
  if (!listener.ok()) return listener.status();
  if (migration_thread_.joinable()) migration_thread_.join();
  migration_active_ = true;
  migration_cancel_ = false;
  migration::Progress p;
  p.role = "target";
  p.state = "listening";
  p.listen = listener->bound.to_string();
  migration_.set(p);
  {
    std::lock_guard<std::mutex> io(migration_io_mu_);
    migration_listener_ = listener->fd;
  }
  spdlog::info("vm {}: waiting for an incoming migration on {}", options_.id, p.listen);
  migration_thread_ =
      std::thread([this, fd = listener->fd, t = request.timeout_s] { target_thread(fd, t); });
  return IncomingStarted{p.listen};
}

void Vmm::target_thread(int listener, double timeout_s) {
  const auto t0 = Clock::now();
  auto channel = migration::accept_one(listener, static_cast<int>(timeout_s * 1000));
  {
    std::lock_guard<std::mutex> io(migration_io_mu_);
    migration_listener_ = -1;
    ::close(listener);
    if (channel.ok()) {
      migration_channel_ = channel->get();
      if (migration_cancel_) (*channel)->shutdown();
    }
  }
  Status s = channel.status();
  if (channel.ok()) {
    migration_.update([](migration::Progress& p) {
      p.state = "active";
      p.phase = "connecting";
    });
    TargetAdapter adapter(*this);
    s = migration::run_target(adapter, **channel, migration_);
    std::lock_guard<std::mutex> io(migration_io_mu_);
    migration_channel_ = nullptr;
  }
  const bool cancelled = record_end(s, t0);
  std::lock_guard<std::mutex> lock(mu_);
  if (s.ok()) {
    spdlog::info("vm {}: arrived by migration; running (downtime {:.1f} ms)", options_.id,
                 migration_.get().downtime_ms);
  } else {
    spdlog::error("vm {}: incoming migration {}: {}", options_.id,
                  cancelled ? "cancelled" : "failed", s.message());
  }
  migration_active_ = false;
  cv_.notify_all();
}

migration::Progress Vmm::migration_status() { return migration_.get(); }

Status Vmm::migration_cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!migration_active_) return Status::not_found("no migration is running");
  }
  migration_cancel_ = true;
  std::lock_guard<std::mutex> io(migration_io_mu_);
  if (migration_channel_ != nullptr) migration_channel_->shutdown();
  if (migration_listener_ >= 0) ::shutdown(migration_listener_, SHUT_RDWR);
  spdlog::info("vm {}: migration cancelled", options_.id);
  return Status();
}

void Vmm::end_migration() {
  bool active = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    active = migration_active_;
  }
  if (active) {
    migration_cancel_ = true;
    std::lock_guard<std::mutex> io(migration_io_mu_);
    if (migration_channel_ != nullptr) migration_channel_->shutdown();
    if (migration_listener_ >= 0) ::shutdown(migration_listener_, SHUT_RDWR);
  }
  if (migration_thread_.joinable() && migration_thread_.get_id() != std::this_thread::get_id())
    migration_thread_.join();
}

}  // namespace nimbus::vmm
