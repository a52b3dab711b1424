#include "vmm/vmm.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "backends/block/disk_resize.h"
#include "devices/virtio/blk/virtio_blk.h"
#include "devices/virtio/console/virtio_console.h"
#include "devices/virtio/net/virtio_net.h"
#include "machine/snapshot/snapshot_file.h"

namespace nimbus::vmm {

namespace {

using Clock = std::chrono::steady_clock;
using machine::virt::ExitReason;
using machine::virt::VirtMachine;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

ApiResponse conflict(std::string message) { return ApiResponse::error(409, std::move(message)); }

uint64_t rss_kib() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

const char* exit_name(ExitReason r) {
  switch (r) {
    case ExitReason::kPoweroff: return "poweroff";
    case ExitReason::kReboot: return "reboot";
    case ExitReason::kFailure: return "failure";
    case ExitReason::kQuit:
    case ExitReason::kRunning: return "stopped";
  }
  return "stopped";
}

}  // namespace

const char* state_name(VmState s) {
  switch (s) {
    case VmState::kNotStarted: return "NotStarted";
    case VmState::kRunning: return "Running";
    case VmState::kPaused: return "Paused";
    case VmState::kStopped: return "Stopped";
  }
  return "?";
}

Vmm::Vmm(VmmOptions options, VmConfig config)
    : options_(std::move(options)),
      console_([this](const uint8_t* data, size_t len) {
        std::lock_guard<std::mutex> lock(mu_);
        if (machine_ == nullptr) return;
        for (size_t i = 0; i < len; i++) machine_->console_input(data[i]);
      }),
      config_(std::move(config)) {}

Vmm::~Vmm() {
  std::lock_guard<std::mutex> lock(mu_);
  if (machine_ != nullptr) {
    machine_->stop(ExitReason::kQuit);
    machine_->wait();
    machine_.reset();
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
  std::lock_guard<std::mutex> lock(mu_);
  if (machine_ != nullptr) {
    machine_->stop(ExitReason::kQuit);
    machine_->wait();
    machine_.reset();
    state_ = VmState::kStopped;
    last_stop_ = "stopped";
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
    const ExitReason reason = machine_->wait();
    const uint32_t code = machine_->failure_code();
    machine_.reset();
    const bool reboot = reason == ExitReason::kReboot && !hard_stop_;
    last_stop_ = hard_stop_ ? "stopped" : exit_name(reason);
    if (reason == ExitReason::kFailure) last_stop_ += fmt::format(" (code {})", code);
    hard_stop_ = false;
    if (reboot) {
      // As a real machine: the same hardware boots again.
      ApiResponse r = start_locked();
      if (r.status >= 300) {
        state_ = VmState::kStopped;
        last_stop_ = "reboot failed: " + r.body.value("fault_message", std::string());
      }
    } else {
      state_ = VmState::kStopped;
    }
    stopped_for_good = state_ == VmState::kStopped;
    cv_.notify_all();
  }
  if (stopped_for_good && options_.exit_on_stop) quit(0);
}

Result<machine::virt::VirtConfig> Vmm::machine_config_locked(bool restoring) {
  auto vc = to_virt_config(config_, options_.images_dir);
  if (!vc.ok()) return vc;
  vc->restoring = restoring;
  // The guest agent's channel: a virtio console whose output we read.
  vc->virtio_console_sink = [this](const uint8_t* data, size_t len) { on_agent_output(data, len); };
  return vc;
}

ApiResponse Vmm::start_locked() {
  auto vc = machine_config_locked(false);
  if (!vc.ok()) return ApiResponse::error(400, vc.message());
  auto m = VirtMachine::create(*vc, [this](const uint8_t* data, size_t len) { console_.write(data, len); });
  if (!m.ok()) return ApiResponse::error(400, m.message());
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
  return ApiResponse::no_content();
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
      if (agent_line_ == "nimbus-agent: ready" || agent_line_ == "nimbus-agent: pong") agent_ready_ = true;
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
  }
}

bool Vmm::wait_stopped(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds timeout) {
  return cv_.wait_for(lock, timeout,
                      [this] { return state_ != VmState::kRunning && state_ != VmState::kPaused; });
}

json Vmm::info() {
  std::lock_guard<std::mutex> lock(mu_);
  json j;
  j["id"] = options_.id;
  j["state"] = state_name(state_);
  j["vmm_pid"] = getpid();
  j["boots"] = boots_;
  j["last_stop"] = last_stop_;
  const bool live = machine_ != nullptr;
  j["uptime_s"] = live ? seconds_since(started_at_) : 0.0;
  j["machine-config"] = {{"vcpu_count", config_.vcpus}, {"mem_size_mib", config_.mem_mib}};
  json vcpus = json::array();
  if (live) {
    for (unsigned i = 0; i < config_.vcpus; i++) {
      vcpus.push_back({{"index", i},
                       {"instructions", machine_->hart_instret(i)},
                       {"state", state_ == VmState::kPaused ? "paused"
                                 : machine_->hart_running(i) ? "running"
                                                             : "idle"}});
    }
  }
  j["vcpus"] = vcpus;
  j["memory"] = {{"guest_mib", config_.mem_mib}, {"vmm_rss_kib", rss_kib()}};
  {
    std::lock_guard<std::mutex> agent(agent_mu_);
    j["agent"] = {{"ready", live && agent_ready_}};
  }
  j["devices"] = device_info_locked();
  return j;
}

json Vmm::device_info_locked() {
  // The n-th drive is the n-th virtio-blk device, the n-th NIC the n-th virtio-net.
  json drives = json::array(), nics = json::array();
  for (size_t i = 0; i < config_.drives.size(); i++) {
    json d = {{"drive_id", config_.drives[i].id}, {"path_on_host", config_.drives[i].path}};
    auto* blk = machine_ ? machine_->virtio_device_of<devices::VirtioBlk>(i) : nullptr;
    if (blk != nullptr) {
      const devices::VirtioBlk::Stats st = blk->stats();
      d["read_requests"] = st.read_requests;
      d["write_requests"] = st.write_requests;
      d["flush_requests"] = st.flush_requests;
      d["bytes_read"] = st.bytes_read;
      d["bytes_written"] = st.bytes_written;
      d["errors"] = st.errors;
    }
    drives.push_back(d);
  }
  for (size_t i = 0; i < config_.nics.size(); i++) {
    json n = {{"iface_id", config_.nics[i].id}, {"guest_mac", config_.nics[i].mac}};
    auto* net = machine_ ? machine_->virtio_device_of<devices::VirtioNet>(i) : nullptr;
    if (net != nullptr) {
      const devices::VirtioNet::Stats st = net->stats();
      n["rx_packets"] = st.rx_packets;
      n["rx_bytes"] = st.rx_bytes;
      n["rx_dropped"] = st.rx_dropped;
      n["tx_packets"] = st.tx_packets;
      n["tx_bytes"] = st.tx_bytes;
      n["tx_dropped"] = st.tx_dropped;
    }
    nics.push_back(n);
  }
  // Every virtio-mmio slot in board order, with its Status register: a guest that broke
  // a ring shows needs_reset (the hostile-guest test reads it here).
  json virtio = json::array();
  for (size_t i = 0; machine_ && machine_->virtio_device(i) != nullptr; i++) {
    const uint32_t status = machine_->virtio_status(i);
    virtio.push_back({{"slot", i},
                      {"device_id", machine_->virtio_device(i)->device_id()},
                      {"status", status},
                      {"needs_reset", (status & devices::VirtioMmio::kStatusNeedsReset) != 0}});
  }
  return {{"drives", drives}, {"network-interfaces", nics}, {"virtio", virtio}};
}

VmConfig Vmm::config() {
  std::lock_guard<std::mutex> lock(mu_);
  return config_;
}

ApiResponse Vmm::edit_config(const std::function<ApiResponse(VmConfig&)>& edit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == VmState::kRunning || state_ == VmState::kPaused) {
    return conflict(fmt::format(
        "the VM is {}: its configuration can change only before it starts or after it stops", state_name(state_)));
  }
  VmConfig edited = config_;
  ApiResponse r = edit(edited);
  if (r.status < 300) config_ = std::move(edited);
  return r;
}

ApiResponse Vmm::resize_drive(const std::string& id, uint64_t new_size) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == VmState::kRunning || state_ == VmState::kPaused) {
    return conflict(fmt::format("the VM is {}: stop it before resizing drive '{}'", state_name(state_), id));
  }
  for (const DriveConfig& d : config_.drives) {
    if (d.id != id) continue;
    if (d.read_only) return ApiResponse::error(400, fmt::format("drive '{}' is read-only", id));
    if (Status s = backends::resize_disk(d.path, new_size); !s.ok()) return ApiResponse::error(400, s.message());
    return ApiResponse::ok({{"drive_id", id}, {"size_bytes", new_size}});
  }
  return ApiResponse::error(404, fmt::format("there is no drive '{}'", id));
}

ApiResponse Vmm::action(const Action& a) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool live = state_ == VmState::kRunning || state_ == VmState::kPaused;
  switch (a.type) {
    case ActionType::kInstanceStart:
      if (live) return conflict(fmt::format("the VM is already {}", state_name(state_)));
      return start_locked();
    case ActionType::kSendCtrlAltDel:
      if (state_ != VmState::kRunning) return conflict(fmt::format("the VM is {}, not Running", state_name(state_)));
      send_agent_command("poweroff");
      return ApiResponse::no_content();
    case ActionType::kShutdown: {
      if (!live) return conflict(fmt::format("the VM is {}, not Running", state_name(state_)));
      const auto t0 = Clock::now();
      if (state_ == VmState::kPaused) {
        machine_->resume();
        state_ = VmState::kRunning;
      }
      send_agent_command("poweroff");
      const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1000));
      if (wait_stopped(lock, timeout)) {
        return ApiResponse::ok({{"graceful", true}, {"seconds", seconds_since(t0)}, {"last_stop", last_stop_}});
      }
      if (machine_ != nullptr) {
        hard_stop_ = true;
        machine_->stop(ExitReason::kQuit);
      }
      wait_stopped(lock, std::chrono::seconds(30));
      return ApiResponse::ok({{"graceful", false}, {"seconds", seconds_since(t0)}, {"last_stop", last_stop_}});
    }
    case ActionType::kStop: {
      if (!live) return conflict(fmt::format("the VM is {}, not Running", state_name(state_)));
      hard_stop_ = true;
      machine_->stop(ExitReason::kQuit);
      if (!wait_stopped(lock, std::chrono::seconds(30))) return ApiResponse::error(500, "the VM did not stop");
      return ApiResponse::no_content();
    }
  }
  return ApiResponse::error(400, "unknown action");
}

ApiResponse Vmm::set_paused(bool paused) {
  std::lock_guard<std::mutex> lock(mu_);
  if (paused) {
    if (state_ != VmState::kRunning) return conflict(fmt::format("the VM is {}, not Running", state_name(state_)));
    machine_->pause();
    state_ = VmState::kPaused;
  } else {
    if (state_ != VmState::kPaused) return conflict(fmt::format("the VM is {}, not Paused", state_name(state_)));
    machine_->resume();
    state_ = VmState::kRunning;
  }
  cv_.notify_all();
  return ApiResponse::no_content();
}

ApiResponse Vmm::snapshot_create(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != VmState::kPaused) {
    return conflict(fmt::format("the VM is {}: pause it first (PATCH /vm {{\"state\": \"Paused\"}})", state_name(state_)));
  }
  const auto t0 = Clock::now();
  StateWriter w;
  machine_->save_state(w);
  auto stats = machine::write_snapshot(path, dump_json(to_json(config_)), w.data(), machine_->guest_ram(),
                                       machine_->ram_size());
  if (!stats.ok()) return ApiResponse::error(400, stats.message());
  return ApiResponse::ok({{"snapshot_path", path},
                          {"bytes", stats->file_bytes},
                          {"pages_stored", stats->pages_stored},
                          {"pages_total", stats->pages_total},
                          {"seconds", seconds_since(t0)}});
}

ApiResponse Vmm::snapshot_load(const std::string& path, bool resume) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != VmState::kNotStarted && state_ != VmState::kStopped) {
    return conflict(fmt::format("the VM is {}: a snapshot loads into a VMM whose VM is not running", state_name(state_)));
  }
  const auto t0 = Clock::now();
  auto file = machine::SnapshotFile::open(path);
  if (!file.ok()) return ApiResponse::error(400, file.message());
  const json j = json::parse((*file)->config_json(), nullptr, false);
  auto parsed = j.is_discarded() ? Result<VmConfig>(Status::error("not JSON")) : parse_vm_config(j);
  if (!parsed.ok()) {
    return ApiResponse::error(400, fmt::format("snapshot '{}': its VM configuration is invalid: {}", path, parsed.message()));
  }
  if (((*parsed).mem_mib << 20) != (*file)->ram_size()) {
    return ApiResponse::error(400, fmt::format("snapshot '{}': RAM size does not match its configuration", path));
  }
  const VmConfig previous = config_;
  config_ = *parsed;
  auto fail = [&](const std::string& message) {
    machine_.reset();
    config_ = previous;
    return ApiResponse::error(400, message);
  };
  auto vc = machine_config_locked(true);
  if (!vc.ok()) return fail(fmt::format("snapshot '{}': {}", path, vc.message()));
  auto m = VirtMachine::create(*vc, [this](const uint8_t* data, size_t len) { console_.write(data, len); });
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
  return ApiResponse::ok({{"state", state_name(state_)}, {"seconds", seconds_since(t0)}});
}

}  // namespace nimbus::vmm
