#include "host/daemon.h"

#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>

#include <fmt/format.h>

#include "backends/block/disk_resize.h"
#include "backends/block/qcow2.h"
#include "backends/net/switch_backend.h"
#include "host/proc_info.h"
#include "host/recovery.h"
#include "host/sandbox.h"
#include "host/vmm_pidfile.h"
#include "host/vmm_link.h"

namespace nimbus::host {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

Reply not_found(const std::string& name) {
  return Reply::error(404, "NotFound", fmt::format("no VM named '{}' (see 'nimbus list')", name));
}

Reply conflict(const std::string& message) { return Reply::error(409, "Conflict", message); }
Reply internal(const std::string& message) { return Reply::error(500, "Internal", message); }

json forward_json(const Forward& f) {
  return {{"protocol", f.protocol}, {"host_address", f.host_address}, {"host_port", f.host_port},
          {"guest_port", f.guest_port}};
}

bool active(const VmRecord& vm) { return vm.desired_state == "running" || vm.desired_state == "paused"; }

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("the VMM exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return fmt::format("the VMM was killed by signal {} (SIG{})", sig, name ? name : "?");
  }
  return "the VMM ended";
}

Status copy_file_atomic(const std::string& from, const std::string& to) {
  std::error_code ec;
  const std::string tmp = to + ".tmp";
  fs::remove(tmp, ec);
  fs::copy_file(from, tmp, ec);
  if (ec) return Status::error(fmt::format("copying '{}' to '{}': {}", from, tmp, ec.message()));
  fs::rename(tmp, to, ec);
  if (ec) return Status::error(fmt::format("renaming '{}': {}", tmp, ec.message()));
  return {};
}

uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

// The real uid of a process (/proc/PID/status: /proc/PID itself belongs to root once a
// process changed its uid), or -1.
int64_t process_uid(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Uid:", 0) == 0) {
      try {
        return std::stoll(line.substr(4));
      } catch (...) {
        return -1;
      }
    }
  }
  return -1;
}

// Can a process of another uid (not in the owner's group) reach `path`? Every directory on
// the way needs search permission for others, and the file itself `need` (S_IXOTH...).
std::string unreachable_by_others(const std::string& path, mode_t need) {
  fs::path p = fs::absolute(path);
  fs::path prefix = "/";
  for (auto it = p.begin(); it != p.end(); ++it) {
    if (*it == "/") continue;
    struct stat st {};
    if (::stat(prefix.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
      return fmt::format("{} (mode {:o}) cannot be searched by other users", prefix.string(), st.st_mode & 07777);
    }
    prefix /= *it;
  }
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0 && (st.st_mode & need) != need) {
    return fmt::format("{} (mode {:o}) is not accessible to other users", p.string(), st.st_mode & 07777);
  }
  return "";
}

}  // namespace

Status check_host_port(const Forward& f) {
  const int fd = ::socket(AF_INET, f.protocol == "udp" ? SOCK_DGRAM : SOCK_STREAM, 0);
  if (fd < 0) return {};
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(f.host_port);
  if (::inet_pton(AF_INET, f.host_address.c_str(), &a.sin_addr) != 1) {
    ::close(fd);
    return Status::error(fmt::format("host address '{}' is not an IPv4 address", f.host_address));
  }
  const int err = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
  ::close(fd);
  switch (err) {
    case 0:
      return {};
    case EADDRNOTAVAIL:
      return Status::error(fmt::format("host address {} is not an address of this host (for host port {}/{})",
                                       f.host_address, f.host_port, f.protocol));
    case EADDRINUSE:
      return Status::error(
          fmt::format("host port {}/{} on {} is in use by another program", f.host_port, f.protocol, f.host_address));
    case EACCES:
      return Status::error(fmt::format("host port {}/{} on {}: binding it is not permitted", f.host_port, f.protocol,
                                       f.host_address));
    default:
      return Status::error(fmt::format("host port {}/{} on {} cannot be used: {}", f.host_port, f.protocol,
                                       f.host_address, std::strerror(err)));
  }
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 63 || name[0] < 'a' || name[0] > 'z') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

Daemon::~Daemon() { shutdown(); }

bool Daemon::sandboxed() const { return options_.sandbox && ::geteuid() == 0 && sandbox_off_.empty(); }

std::string Daemon::describe() const {
  const CapacityPolicy& p = options_.policy;
  return fmt::format("state {}; cgroups {}; sandbox {}; host: {} CPUs x {} overcommit, {} MiB memory ({} reserved, "
                     "{} per VM), {} MiB disk ({} reserved)",
                     options_.state_dir, cgroups_ ? cgroups_->describe() : "none",
                     sandboxed() ? "on (own uid, seccomp)" : "off" + (sandbox_off_.empty() ? "" : ": " + sandbox_off_),
                     p.cpus_override.value_or(host_.cpus), p.cpu_overcommit, p.memory_mib_override.value_or(host_.memory_mib),
                     p.reserved_memory_mib, p.vm_overhead_mib, p.disk_mib_override.value_or(host_.disk_mib),
                     p.reserved_disk_mib);
}

Status Daemon::init() {
  if (Status s = validate(options_.policy); !s.ok()) return s;
  std::error_code ec;
  for (const char* sub : {"", "/vms", "/images", "/net"}) {
    fs::create_directories(options_.state_dir + sub, ec);
    if (ec) return Status::error(fmt::format("cannot create '{}{}': {}", options_.state_dir, sub, ec.message()));
  }
  ::chmod(options_.state_dir.c_str(), 0755);
  // The VMMs run under uids of their own: they must be able to reach the nimbus binary and
  // the state directory. Where they cannot, they run as nimbusd's user (still in their
  // cgroup; seccomp still applies).
  if (options_.sandbox && ::geteuid() == 0) {
    sandbox_off_ = unreachable_by_others(options_.vmm_exe, S_IXOTH);
    if (sandbox_off_.empty()) sandbox_off_ = unreachable_by_others(options_.state_dir, S_IXOTH);
  } else if (options_.sandbox) {
    sandbox_off_ = "nimbusd is not running as root";
  } else {
    sandbox_off_ = "--no-sandbox";
  }
  ::chmod((options_.state_dir + "/vms").c_str(), 0711);
  // The host switch: VMs of different uids share it through the VM group, each in a port
  // directory of its uid that only nimbusd creates (switch_backend.h says why). Not the old
  // net/host.d, which VMs could write to: a socket bound there keeps its path for good.
  switch_path_ = options_.state_dir + "/net/hostnet";
  const std::string switch_dir = switch_path_ + ".d";
  fs::create_directories(switch_dir, ec);
  if (sandboxed() ? ::chown(switch_dir.c_str(), 0, options_.uid_base) != 0 || ::chmod(switch_dir.c_str(), 0750) != 0
                  : ::chmod(switch_dir.c_str(), 0700) != 0) {
    return Status::error(fmt::format("cannot set up the host switch '{}': {}", switch_dir, std::strerror(errno)));
  }
  auto reg = Registry::open(options_.state_dir + "/nimbus.db");
  if (!reg.ok()) return reg.status();
  registry_ = std::move(*reg);
  images_ = std::make_unique<ImageStore>(options_.state_dir + "/images");
  if (Status s = images_->ensure_default(options_.bundled_images); !s.ok()) {
    return Status::error("importing the default image: " + s.message());
  }
  auto host = detect_host_resources(options_.state_dir);
  if (!host.ok()) return host.status();
  host_ = *host;
  cgroups_ = std::make_unique<CgroupManager>(CgroupManager::detect(options_.cgroup_root, options_.cgroup_parent));
  recover();
  monitor_ = std::thread([this] { monitor_loop(); });
  return {};
}

void Daemon::shutdown() {
  {
    std::lock_guard<std::mutex> lock(monitor_mu_);
    quit_ = true;
  }
  monitor_cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
}

// ---- busy marking ----------------------------------------------------------------------

Result<VmRecord> Daemon::acquire(const std::string& name, const char* op, Reply& error) {
  std::lock_guard<std::mutex> lock(mu_);
  auto vm = registry_->get_vm(name);
  if (!vm.ok()) {
    error = internal(vm.message());
    return vm.status();
  }
  if (!vm->has_value()) {
    error = not_found(name);
    return Status::error("not found");
  }
  if (auto it = busy_.find(name); it != busy_.end()) {
    error = conflict(fmt::format("VM '{}' is busy ({} in progress); try again in a moment", name, it->second));
    return Status::error("busy");
  }
  busy_[name] = op;
  return **vm;
}

void Daemon::release(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  busy_.erase(name);
}

class Daemon::BusyGuard {
 public:
  BusyGuard(Daemon& d, std::string name) : d_(d), name_(std::move(name)) {}
  ~BusyGuard() { d_.release(name_); }

 private:
  Daemon& d_;
  std::string name_;
};

Status Daemon::save(const VmRecord& vm) {
  std::lock_guard<std::mutex> lock(mu_);
  return registry_->update_vm(vm);
}

// ---- capacity --------------------------------------------------------------------------

Capacity Daemon::capacity_locked(const std::string& exclude) {
  std::vector<VmAllocation> allocations;
  auto vms = registry_->list_vms();
  if (vms.ok()) {
    for (const VmRecord& v : *vms) {
      if (v.name == exclude) continue;
      // A VM with a process holds its vCPUs and memory whatever it wants to become.
      allocations.push_back(VmAllocation{Allocation{v.cpus, v.memory_mib, v.disk_mib}, active(v) || v.pid != 0});
    }
  }
  return compute_capacity(host_, options_.policy, allocations);
}

Status Daemon::check_fit_locked(const VmRecord& vm, const std::string& exclude, bool compute, bool disk) {
  Allocation want{compute ? vm.cpus : 0u, compute ? vm.memory_mib : 0u, disk ? vm.disk_mib : 0u};
  return check_fit(capacity_locked(exclude), want, options_.policy);
}

Status Daemon::check_ports_locked(const VmRecord& vm) {
  auto vms = registry_->list_vms();
  for (const Forward& f : vm.forwards) {
    if (vms.ok()) {
      for (const VmRecord& other : *vms) {
        if (other.name == vm.name) continue;
        for (const Forward& o : other.forwards) {
          if (o.host_port == f.host_port && o.protocol == f.protocol) {
            return Status::error(fmt::format("host port {}/{} is already forwarded to VM '{}'", f.host_port,
                                             f.protocol, other.name));
          }
        }
      }
    }
    if (Status s = check_host_port(f); !s.ok()) return s;
  }
  return {};
}

// ---- processes -------------------------------------------------------------------------

void Daemon::reap_children_locked() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    children_.erase(pid);
    exits_[pid] = status;
  }
}

bool Daemon::process_alive(const VmRecord& vm) {
  if (vm.pid <= 0) return false;
  std::lock_guard<std::mutex> lock(mu_);
  reap_children_locked();
  const auto pid = static_cast<pid_t>(vm.pid);
  if (exits_.count(pid) != 0) return false;
  if (children_.count(pid) != 0) return true;
  return same_process(pid, vm.pid_start);
}

bool Daemon::wait_process_gone(const VmRecord& vm, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (process_alive(vm)) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

bool Daemon::is_vmm_of(pid_t pid, const VmRecord& vm) {
  auto st = read_proc_stat(pid);
  if (!st.ok() || st->state == 'Z' || st->state == 'X') return false;
  // The pidfile is in a directory the VMM owns: a compromised VMM could write any pid into
  // it. Only a process that is a VMM of this very VM (and runs under its uid) counts.
  auto cmd = proc_cmdline(pid);
  if (!cmd.ok() || (" " + *cmd + " ").find(" --id " + vm.name + " ") == std::string::npos) return false;
  return vm.uid == 0 || process_uid(pid) == static_cast<int64_t>(vm.uid);
}

std::vector<pid_t> Daemon::live_vmms(const VmRecord& vm) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reap_children_locked();
  }
  std::vector<pid_t> candidates;
  // Everything in the VM's cgroup is a VMM of the VM (only root can move processes in).
  if (cgroups_ && cgroups_->version() != CgroupVersion::kNone) candidates = cgroups_->processes(vm.name);
  const size_t from_cgroup = candidates.size();
  if (auto holder = pidfile_holder(VmPaths::of(options_.state_dir, vm.name).pid_file)) candidates.push_back(*holder);
  std::vector<pid_t> out = live_pids(candidates, [&](pid_t pid) {
    const bool in_cgroup = std::find(candidates.begin(), candidates.begin() + static_cast<long>(from_cgroup), pid) !=
                           candidates.begin() + static_cast<long>(from_cgroup);
    if (in_cgroup) {
      auto st = read_proc_stat(pid);
      return st.ok() && st->state != 'Z' && st->state != 'X';
    }
    return is_vmm_of(pid, vm);
  });
  if (process_alive(vm) && std::find(out.begin(), out.end(), static_cast<pid_t>(vm.pid)) == out.end()) {
    out.push_back(static_cast<pid_t>(vm.pid));
    std::sort(out.begin(), out.end());
  }
  return out;
}

bool Daemon::kill_vmms(const VmRecord& vm, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const std::vector<pid_t> live = live_vmms(vm);
    if (live.empty()) break;
    if (Clock::now() >= deadline) return false;
    for (pid_t pid : live) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (cgroups_->version() != CgroupVersion::kNone) (void)cgroups_->remove(vm.name);
  return true;
}

std::string Daemon::exit_description_locked(const VmRecord& vm, bool* clean) {
  *clean = false;
  std::string desc;
  const auto pid = static_cast<pid_t>(vm.pid);
  auto it = exits_.find(pid);
  if (it != exits_.end()) {
    desc = describe_wait_status(it->second);
    *clean = WIFEXITED(it->second) && WEXITSTATUS(it->second) == 0;
    exits_.erase(it);
  }
  // The VMM leaves "STATUS REASON" when it exits by itself (our only word on a process we
  // re-adopted and so cannot wait for).
  std::ifstream in(VmPaths::of(options_.state_dir, vm.name).exit_file);
  int status = -1;
  std::string reason;
  if (in >> status) {
    std::getline(in >> std::ws, reason);
    if (desc.empty()) {
      desc = fmt::format("the VMM exited with status {}", status);
      *clean = status == 0;
    }
    if (!reason.empty()) desc += " (" + reason + ")";
    // The machine failed (the VMM itself exits normally then): that is a crash of the VM.
    if (reason.rfind("failure", 0) == 0) *clean = false;
  }
  if (desc.empty()) desc = "the VMM process disappeared";
  return desc;
}

Status Daemon::prepare_dir(const VmRecord& vm) {
  const VmPaths p = VmPaths::of(options_.state_dir, vm.name);
  std::error_code ec;
  fs::create_directories(p.snapshots, ec);
  if (ec) return Status::error(fmt::format("cannot create '{}': {}", p.snapshots, ec.message()));
  ::chmod(p.dir.c_str(), 0700);
  chown_vm(vm, p.dir);
  chown_vm(vm, p.snapshots);
  // Its endpoint on the host switch goes in a directory only its uid can write to, and its
  // frames there must carry its eth1 MAC.
  if (vm.uid != 0) {
    return backends::SwitchBackend::prepare_port_dir(switch_path_, vm.uid, options_.uid_base, vm_mac(vm.slot, 1));
  }
  return {};
}

Status Daemon::rebuild_disk(const VmRecord& vm) {
  const VmPaths p = VmPaths::of(options_.state_dir, vm.name);
  auto image = images_->get(vm.image);
  if (!image.ok()) return image.status();
  if (Status s = prepare_dir(vm); !s.ok()) return s;
  const std::string tmp = p.disk + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  if (Status s = backends::create_qcow2(tmp, vm.disk_mib << 20, 65536, image->disk, image->disk_format); !s.ok()) {
    fs::remove(tmp, ec);
    return s;
  }
  chown_vm(vm, tmp);
  fs::rename(tmp, p.disk, ec);
  if (ec) return Status::error(fmt::format("renaming '{}': {}", tmp, ec.message()));
  return {};
}

void Daemon::chown_vm(const VmRecord& vm, const std::string& path) {
  if (vm.uid != 0) (void)!::chown(path.c_str(), vm.uid, options_.uid_base);
}

Status Daemon::start_process(VmRecord& vm, const std::string& snapshot_file) {
  const VmPaths p = VmPaths::of(options_.state_dir, vm.name);
  // Never two VMMs on one disk: a VMM left over (e.g. from a nimbusd that died) must be
  // stopped first.
  if (const std::vector<pid_t> live = live_vmms(vm); !live.empty()) {
    return Status::error(fmt::format("VM '{}' still has a live VMM process (pid {}); stop it first (nimbus stop {})",
                                     vm.name, live.front(), vm.name));
  }
  auto image = images_->get(vm.image);
  if (!image.ok()) return image.status();
  if (Status s = prepare_dir(vm); !s.ok()) return s;
  {
    std::ofstream out(p.config);
    out << vmm::to_json(make_vmm_config(vm, *image, p, switch_path_)).dump(2) << "\n";
    if (!out) return Status::error(fmt::format("cannot write '{}'", p.config));
  }
  chown_vm(vm, p.config);
  std::error_code ec;
  fs::remove(p.exit_file, ec);

  SpawnSpec spec;
  spec.exe = options_.vmm_exe;
  spec.args = {"vmm", "--api-sock", p.api_sock, "--console", "none", "--console-sock", p.console_sock,
               "--console-log", p.console_log, "--id", vm.name, "--exit-on-stop", "--exit-file", p.exit_file};
  if (options_.sandbox && seccomp_supported()) spec.args.push_back("--sandbox");
  if (snapshot_file.empty()) {
    spec.args.insert(spec.args.end(), {"--config", p.config});
  } else {
    spec.args.insert(spec.args.end(), {"--restore", snapshot_file});
  }
  spec.log_path = p.vmm_log;
  spec.pid_file = p.pid_file;
  spec.cwd = p.dir;
  spec.drop_privileges = vm.uid != 0;
  spec.uid = vm.uid;
  spec.gid = options_.uid_base;
  if (cgroups_->version() != CgroupVersion::kNone) {
    CgroupLimits limits;
    limits.vcpus = vm.cpus;
    limits.memory_bytes = (vm.memory_mib + options_.policy.vm_overhead_mib) << 20;
    if (Status s = cgroups_->create(vm.name, limits); !s.ok()) return s;
    spec.cgroup_procs = cgroups_->procs_files(vm.name);
  }
  auto pid = spawn_vmm(spec);
  if (!pid.ok()) return pid.status();
  auto st = read_proc_stat(*pid);
  vm.pid = *pid;
  vm.pid_start = st.ok() ? st->start_ticks : 0;
  vm.state = snapshot_file.empty() ? "starting" : "running";
  vm.desired_state = "running";
  vm.started_at = utc_now();
  {
    // Recorded at once (a nimbusd killed later finds the pid in the database; one killed
    // before this finds the process by its cgroup and pidfile).
    std::lock_guard<std::mutex> lock(mu_);
    children_.insert(*pid);
    ready_[vm.name] = false;
    if (Status s = registry_->update_vm(vm); !s.ok()) return s;
  }

  // The VMM is up when its API answers; a bad configuration makes it exit at once.
  VmmLink link(p.api_sock);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    if (!process_alive(vm)) {
      bool clean = false;
      std::string desc;
      {
        std::lock_guard<std::mutex> lock(mu_);
        desc = exit_description_locked(vm, &clean);
      }
      const std::string line = last_log_line(p.vmm_log);
      vm.pid = 0;
      vm.state = "crashed";
      vm.desired_state = "stopped";
      vm.last_exit = desc;
      (void)save(vm);
      cgroups_->remove(vm.name);
      return Status::error(fmt::format("{}: {}", desc, line.empty() ? "(no message; see " + p.vmm_log + ")" : line));
    }
    if (fs::exists(p.api_sock, ec) && link.info(1000).ok()) break;
    if (Clock::now() >= deadline) {
      ::kill(static_cast<pid_t>(vm.pid), SIGKILL);
      wait_process_gone(vm, 3000);
      vm.pid = 0;
      vm.state = "crashed";
      vm.desired_state = "stopped";
      vm.last_exit = "the VMM did not answer on its API socket within 20 s";
      (void)save(vm);
      return Status::error(vm.last_exit);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  if (!snapshot_file.empty()) {
    auto info = link.info(1000);
    if (info.ok() && info->value("state", std::string()) == "Paused") vm.state = "paused";
    (void)save(vm);
  }
  return {};
}

bool Daemon::stop_process(VmRecord& vm, bool force, unsigned timeout_s) {
  bool graceful = false;
  const VmPaths p = VmPaths::of(options_.state_dir, vm.name);
  if (process_alive(vm)) {
    VmmLink link(p.api_sock);
    if (!force) {
      auto r = link.shutdown(timeout_s);
      graceful = r.ok() && *r;
    } else {
      (void)link.stop();
    }
    if (!wait_process_gone(vm, 5000)) {
      ::kill(static_cast<pid_t>(vm.pid), SIGKILL);
      wait_process_gone(vm, 5000);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    bool clean = false;
    if (vm.pid != 0) vm.last_exit = exit_description_locked(vm, &clean);
    ready_[vm.name] = false;
  }
  // Any other VMM of this VM (left by a nimbusd that died before it recorded the pid) goes
  // too, and kill_vmms removes the cgroup once it is empty.
  VmRecord gone = vm;
  gone.pid = 0;
  (void)kill_vmms(gone, 5000);
  vm.pid = 0;
  vm.pid_start = 0;
  vm.state = "stopped";
  return graceful;
}

// ---- JSON ------------------------------------------------------------------------------

json Daemon::vm_json(const VmRecord& vm, bool with_usage) {
  const VmPaths p = VmPaths::of(options_.state_dir, vm.name);
  json fwd = json::array();
  for (const Forward& f : vm.forwards) fwd.push_back(forward_json(f));
  bool ready = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = ready_.find(vm.name);
    ready = it != ready_.end() && it->second && (vm.state == "running" || vm.state == "paused");
  }
  json j = {{"name", vm.name},
            {"image", vm.image},
            {"cpus", vm.cpus},
            {"memory_mib", vm.memory_mib},
            {"disk_mib", vm.disk_mib},
            {"forwards", fwd},
            {"restart_policy", vm.restart_policy},
            {"state", vm.state},
            {"desired_state", vm.desired_state},
            {"pid", vm.pid != 0 ? json(vm.pid) : json(nullptr)},
            {"uid", vm.uid},
            {"created_at", vm.created_at},
            {"started_at", vm.started_at},
            {"ready", ready},
            {"restarts", vm.restarts},
            {"last_exit", vm.last_exit},
            {"addresses", {{"user", kUserNetAddress}, {"host", host_network_address(vm.slot)}}},
            {"cgroup", cgroups_->version() != CgroupVersion::kNone ? cgroups_->path(vm.name) : ""},
            {"console_socket", p.console_sock},
            {"console_log", p.console_log}};
  if (!with_usage) return j;
  json usage = {{"cpu_seconds", 0.0},     {"memory_mib", 0.0},      {"disk_used_mib", allocated_bytes(p.disk) / 1048576.0},
                {"disk_read_bytes", 0},   {"disk_write_bytes", 0},  {"net_rx_bytes", 0},
                {"net_tx_bytes", 0}};
  if (vm.pid != 0) {
    auto st = read_proc_stat(static_cast<pid_t>(vm.pid));
    if (st.ok() && st->start_ticks == vm.pid_start) {
      usage["cpu_seconds"] = st->cpu_seconds;
      usage["memory_mib"] = static_cast<double>(st->rss_bytes) / 1048576.0;
      auto info = VmmLink(p.api_sock).info(1000);
      if (info.ok() && info->contains("devices")) {
        uint64_t rd = 0, wr = 0, rx = 0, tx = 0;
        for (const json& d : (*info)["devices"].value("drives", json::array())) {
          rd += d.value("bytes_read", uint64_t{0});
          wr += d.value("bytes_written", uint64_t{0});
        }
        for (const json& n : (*info)["devices"].value("network-interfaces", json::array())) {
          rx += n.value("rx_bytes", uint64_t{0});
          tx += n.value("tx_bytes", uint64_t{0});
        }
        usage["disk_read_bytes"] = rd;
        usage["disk_write_bytes"] = wr;
        usage["net_rx_bytes"] = rx;
        usage["net_tx_bytes"] = tx;
      }
    }
  }
  j["usage"] = usage;
  return j;
}

// ---- operations ------------------------------------------------------------------------

Reply Daemon::host_info() {
  json j;
  char hostname[256] = {};
  ::gethostname(hostname, sizeof hostname - 1);
  unsigned total = 0, running = 0;
  Capacity cap;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cap = capacity_locked();
    auto vms = registry_->list_vms();
    if (vms.ok()) {
      total = static_cast<unsigned>(vms->size());
      for (const VmRecord& v : *vms) running += v.pid != 0 ? 1 : 0;
    }
  }
  j = to_json(cap);
  j["hostname"] = hostname;
  j["version"] = "0.1.0";
  j["state_dir"] = options_.state_dir;
  j["cgroup"] = cgroups_->describe();
  j["sandbox"] = sandboxed();
  if (!sandbox_off_.empty()) j["sandbox_note"] = sandbox_off_;
  j["vm_overhead_mib"] = options_.policy.vm_overhead_mib;
  j["vms"] = {{"total", total}, {"running", running}};
  return Reply::ok(j);
}

Reply Daemon::list_images() {
  auto list = images_->list();
  if (!list.ok()) return internal(list.message());
  json a = json::array();
  for (const ImageInfo& i : *list) a.push_back(to_json(i));
  return Reply::ok({{"images", a}});
}

Reply Daemon::list_vms() {
  std::vector<VmRecord> vms;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto r = registry_->list_vms();
    if (!r.ok()) return internal(r.message());
    vms = *r;
  }
  json a = json::array();
  for (const VmRecord& v : vms) a.push_back(vm_json(v, true));
  return Reply::ok({{"vms", a}});
}

Reply Daemon::get_vm(const std::string& name) {
  std::optional<VmRecord> vm;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto r = registry_->get_vm(name);
    if (!r.ok()) return internal(r.message());
    vm = *r;
  }
  if (!vm) return not_found(name);
  return Reply::ok(vm_json(*vm, true));
}

Reply Daemon::create_vm(const CreateRequest& req) {
  auto image = images_->get(req.image);
  if (!image.ok()) return Reply::error(404, "NotFound", image.message());
  VmRecord vm;
  vm.image = req.image;
  vm.cpus = req.cpus;
  vm.memory_mib = req.memory_mib;
  vm.disk_mib = req.disk_mib != 0 ? req.disk_mib : image->disk_mib;
  if (vm.disk_mib < image->disk_mib) {
    return Reply::error(400, "BadRequest",
                        fmt::format("disk_mib {} is smaller than image '{}' ({} MiB); a disk can only be as large or "
                                    "larger",
                                    vm.disk_mib, req.image, image->disk_mib));
  }
  vm.forwards = req.forwards;
  vm.restart_policy = req.restart_policy;
  vm.desired_state = req.start ? "running" : "stopped";
  vm.state = "creating";
  vm.created_at = utc_now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto all = registry_->list_vms();
    if (!all.ok()) return internal(all.message());
    std::set<std::string> names;
    std::set<unsigned> slots;
    for (const VmRecord& v : *all) {
      names.insert(v.name);
      slots.insert(v.slot);
    }
    vm.name = req.name;
    for (unsigned n = 1; vm.name.empty(); n++) {
      if (names.count(fmt::format("vm-{}", n)) == 0) vm.name = fmt::format("vm-{}", n);
    }
    if (names.count(vm.name) != 0) return conflict(fmt::format("a VM named '{}' already exists", vm.name));
    for (unsigned s = kMinSlot; s <= kMaxSlot && vm.slot == 0; s++) {
      if (slots.count(s) == 0) vm.slot = s;
    }
    if (vm.slot == 0) return Reply::error(409, "InsufficientCapacity", "this host has no free VM slot");
    vm.uid = sandboxed() ? options_.uid_base + vm.slot : 0;
    if (Status s = check_fit_locked(vm, vm.name, req.start, true); !s.ok()) {
      return Reply::error(409, "InsufficientCapacity", fmt::format("cannot create VM '{}': {}", vm.name, s.message()));
    }
    if (Status s = check_ports_locked(vm); !s.ok()) return conflict(s.message());
    if (Status s = registry_->insert_vm(vm); !s.ok()) return conflict(s.message());
    busy_[vm.name] = "create";
  }
  BusyGuard guard(*this, vm.name);
  const VmPaths p = VmPaths::of(options_.state_dir, vm.name);
  auto rollback = [&](const std::string& why) {
    std::error_code ec;
    fs::remove_all(p.dir, ec);
    if (cgroups_->version() != CgroupVersion::kNone) (void)cgroups_->remove(vm.name);
    std::lock_guard<std::mutex> lock(mu_);
    (void)registry_->delete_vm(vm.name);
    ready_.erase(vm.name);
    return internal(fmt::format("cannot create VM '{}': {}", vm.name, why));
  };
  if (Status s = prepare_dir(vm); !s.ok()) return rollback(s.message());
  if (Status s = backends::create_qcow2(p.disk, vm.disk_mib << 20, 65536, image->disk, image->disk_format); !s.ok()) {
    return rollback(s.message());
  }
  chown_vm(vm, p.disk);
  if (req.start) {
    if (Status s = start_process(vm); !s.ok()) return rollback("the VM did not start: " + s.message());
  } else {
    vm.state = "stopped";
    if (Status s = save(vm); !s.ok()) return rollback(s.message());
  }
  return Reply::ok(vm_json(vm, false), 201);
}

Reply Daemon::delete_vm(const std::string& name) {
  Reply err;
  auto vm = acquire(name, "delete", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  stop_process(*vm, true, 0);
  const VmPaths p = VmPaths::of(options_.state_dir, name);
  std::error_code ec;
  fs::remove_all(p.dir, ec);
  if (ec) return internal(fmt::format("deleting '{}': {}", p.dir, ec.message()));
  std::lock_guard<std::mutex> lock(mu_);
  if (Status s = registry_->delete_vm(name); !s.ok()) return internal(s.message());
  ready_.erase(name);
  restart_times_.erase(name);
  return Reply::ok({{"deleted", name}});
}

Reply Daemon::start_vm(const std::string& name) {
  Reply err;
  auto vm = acquire(name, "start", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  if (process_alive(*vm)) return conflict(fmt::format("VM '{}' is already {}", name, vm->state));
  if (const std::vector<pid_t> live = live_vmms(*vm); !live.empty()) {
    return conflict(fmt::format("VM '{}' is {} but a VMM process of it is still alive (pid {}); stop it first "
                                "(nimbus stop {})",
                                name, vm->state, live.front(), name));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = check_fit_locked(*vm, name, true, false); !s.ok()) {
      return Reply::error(409, "InsufficientCapacity", fmt::format("cannot start VM '{}': {}", name, s.message()));
    }
    if (Status s = check_ports_locked(*vm); !s.ok()) return conflict(s.message());
  }
  if (Status s = start_process(*vm); !s.ok()) return internal(fmt::format("VM '{}' did not start: {}", name, s.message()));
  return Reply::ok(vm_json(*vm, false));
}

Reply Daemon::stop_vm(const std::string& name, bool force, unsigned timeout_s) {
  Reply err;
  auto vm = acquire(name, "stop", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  if (vm->pid == 0 && live_vmms(*vm).empty()) {
    if (vm->desired_state != "stopped") {
      vm->desired_state = "stopped";
      (void)save(*vm);
    }
    json j = vm_json(*vm, false);
    j["graceful"] = false;
    return Reply::ok(j);
  }
  vm->state = "stopping";
  vm->desired_state = "stopped";
  (void)save(*vm);
  const bool graceful = stop_process(*vm, force, timeout_s);
  if (Status s = save(*vm); !s.ok()) return internal(s.message());
  json j = vm_json(*vm, false);
  j["graceful"] = graceful;
  return Reply::ok(j);
}

Reply Daemon::restart_vm(const std::string& name, bool force, unsigned timeout_s) {
  Reply err;
  auto vm = acquire(name, "restart", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  if (vm->pid != 0 || !live_vmms(*vm).empty()) {
    vm->state = "stopping";
    (void)save(*vm);
    stop_process(*vm, force, timeout_s);
    (void)save(*vm);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = check_fit_locked(*vm, name, true, false); !s.ok()) {
      return Reply::error(409, "InsufficientCapacity", fmt::format("cannot start VM '{}': {}", name, s.message()));
    }
  }
  if (Status s = start_process(*vm); !s.ok()) return internal(fmt::format("VM '{}' did not start: {}", name, s.message()));
  return Reply::ok(vm_json(*vm, false));
}

Reply Daemon::pause_vm(const std::string& name) {
  Reply err;
  auto vm = acquire(name, "pause", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  if (vm->state == "paused") return Reply::ok(vm_json(*vm, false));
  if (vm->pid == 0 || (vm->state != "running" && vm->state != "starting")) {
    return conflict(fmt::format("VM '{}' is {}; only a running VM can be paused", name, vm->state));
  }
  if (Status s = VmmLink(VmPaths::of(options_.state_dir, name).api_sock).pause(); !s.ok()) {
    return internal(fmt::format("pausing VM '{}': {}", name, s.message()));
  }
  vm->state = "paused";
  vm->desired_state = "paused";
  if (Status s = save(*vm); !s.ok()) return internal(s.message());
  return Reply::ok(vm_json(*vm, false));
}

Reply Daemon::resume_vm(const std::string& name) {
  Reply err;
  auto vm = acquire(name, "resume", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  if (vm->state == "running") return Reply::ok(vm_json(*vm, false));
  if (vm->pid == 0 || vm->state != "paused") {
    return conflict(fmt::format("VM '{}' is {}; only a paused VM can be resumed", name, vm->state));
  }
  if (Status s = VmmLink(VmPaths::of(options_.state_dir, name).api_sock).resume(); !s.ok()) {
    return internal(fmt::format("resuming VM '{}': {}", name, s.message()));
  }
  bool ready = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready = ready_[name];
  }
  vm->state = ready ? "running" : "starting";
  vm->desired_state = "running";
  if (Status s = save(*vm); !s.ok()) return internal(s.message());
  return Reply::ok(vm_json(*vm, false));
}

Reply Daemon::resize_vm(const std::string& name, const ResizeRequest& req) {
  Reply err;
  auto vm = acquire(name, "resize", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  if (process_alive(*vm) || !live_vmms(*vm).empty()) {
    return conflict(fmt::format("VM '{}' is {}; stop it first (nimbus stop {}), then resize", name, vm->state, name));
  }
  VmRecord next = *vm;
  if (req.cpus) next.cpus = *req.cpus;
  if (req.memory_mib) next.memory_mib = *req.memory_mib;
  if (req.disk_mib) {
    if (*req.disk_mib < vm->disk_mib) {
      return Reply::error(400, "BadRequest",
                          fmt::format("disk_mib {} is smaller than the disk ({} MiB): disks can only grow",
                                      *req.disk_mib, vm->disk_mib));
    }
    next.disk_mib = *req.disk_mib;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = check_fit_locked(next, name, active(next), true); !s.ok()) {
      return Reply::error(409, "InsufficientCapacity", fmt::format("cannot resize VM '{}': {}", name, s.message()));
    }
  }
  if (next.disk_mib != vm->disk_mib) {
    if (Status s = backends::resize_disk(VmPaths::of(options_.state_dir, name).disk, next.disk_mib << 20); !s.ok()) {
      return internal(fmt::format("resizing the disk of VM '{}': {}", name, s.message()));
    }
  }
  if (Status s = save(next); !s.ok()) return internal(s.message());
  return Reply::ok(vm_json(next, false));
}

Reply Daemon::list_snapshots(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto vm = registry_->get_vm(name);
  if (!vm.ok()) return internal(vm.message());
  if (!vm->has_value()) return not_found(name);
  auto list = registry_->list_snapshots(name);
  if (!list.ok()) return internal(list.message());
  json a = json::array();
  for (const SnapshotRecord& s : *list) {
    a.push_back({{"name", s.name}, {"vm", s.vm}, {"created_at", s.created_at}, {"size_bytes", s.size_bytes},
                 {"cpus", s.cpus}, {"memory_mib", s.memory_mib}});
  }
  return Reply::ok({{"snapshots", a}});
}

Reply Daemon::create_snapshot(const std::string& name, const std::string& snap_in) {
  Reply err;
  auto vm = acquire(name, "snapshot", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  if (vm->pid == 0 || (vm->state != "running" && vm->state != "paused" && vm->state != "starting")) {
    return conflict(fmt::format("VM '{}' is {}; a snapshot needs a running or paused VM", name, vm->state));
  }
  std::string snap = snap_in;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto list = registry_->list_snapshots(name);
    if (!list.ok()) return internal(list.message());
    std::set<std::string> names;
    for (const SnapshotRecord& s : *list) names.insert(s.name);
    for (unsigned n = 1; snap.empty(); n++) {
      if (names.count(fmt::format("snap-{}", n)) == 0) snap = fmt::format("snap-{}", n);
    }
    if (names.count(snap) != 0) return conflict(fmt::format("VM '{}' already has a snapshot named '{}'", name, snap));
  }
  const VmPaths p = VmPaths::of(options_.state_dir, name);
  const std::string dir = p.snapshot_dir(snap);
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return internal(fmt::format("cannot create '{}': {}", dir, ec.message()));
  chown_vm(*vm, dir);
  VmmLink link(p.api_sock);
  const bool was_running = vm->state != "paused";
  auto fail = [&](const std::string& why) {
    if (was_running) (void)link.resume();
    fs::remove_all(dir, ec);
    return internal(fmt::format("snapshot of VM '{}': {}", name, why));
  };
  if (was_running) {
    if (Status s = link.pause(); !s.ok()) return fail(s.message());
  }
  // The disk is part of the snapshot: the paused VMM has flushed it, so a copy of the
  // overlay now matches the RAM and device state exactly.
  if (Status s = link.snapshot_create(dir + "/state.snap"); !s.ok()) return fail(s.message());
  if (Status s = copy_file_atomic(p.disk, dir + "/disk.qcow2"); !s.ok()) return fail(s.message());
  if (was_running) {
    if (Status s = link.resume(); !s.ok()) return internal(fmt::format("resuming VM '{}': {}", name, s.message()));
  }
  SnapshotRecord rec{name, snap, utc_now(),
                     allocated_bytes(dir + "/state.snap") + allocated_bytes(dir + "/disk.qcow2"), vm->cpus,
                     vm->memory_mib};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = registry_->insert_snapshot(rec); !s.ok()) {
      fs::remove_all(dir, ec);
      return internal(s.message());
    }
  }
  return Reply::ok({{"name", rec.name}, {"vm", rec.vm}, {"created_at", rec.created_at}, {"size_bytes", rec.size_bytes},
                    {"cpus", rec.cpus}, {"memory_mib", rec.memory_mib}},
                   201);
}

Reply Daemon::restore_snapshot(const std::string& name, const std::string& snap) {
  Reply err;
  auto vm = acquire(name, "restore", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  std::optional<SnapshotRecord> rec;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto list = registry_->list_snapshots(name);
    if (!list.ok()) return internal(list.message());
    for (const SnapshotRecord& s : *list) {
      if (s.name == snap) rec = s;
    }
  }
  if (!rec) return Reply::error(404, "NotFound", fmt::format("VM '{}' has no snapshot named '{}'", name, snap));
  const VmPaths p = VmPaths::of(options_.state_dir, name);
  const std::string dir = p.snapshot_dir(snap);
  std::error_code ec;
  if (!fs::exists(dir + "/state.snap", ec) || !fs::exists(dir + "/disk.qcow2", ec)) {
    return internal(fmt::format("snapshot '{}' of VM '{}' is missing its files in {}", snap, name, dir));
  }
  VmRecord next = *vm;
  next.cpus = rec->cpus;
  next.memory_mib = rec->memory_mib;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = check_fit_locked(next, name, true, false); !s.ok()) {
      return Reply::error(409, "InsufficientCapacity", fmt::format("cannot restore VM '{}': {}", name, s.message()));
    }
  }
  if (vm->pid != 0 || !live_vmms(*vm).empty()) {
    vm->state = "stopping";
    (void)save(*vm);
    stop_process(*vm, true, 0);
    next.pid = 0;
    next.last_exit = vm->last_exit;
  }
  next.state = "stopped";
  if (Status s = copy_file_atomic(dir + "/disk.qcow2", p.disk); !s.ok()) {
    (void)save(next);
    return internal(s.message());
  }
  chown_vm(next, p.disk);
  if (Status s = start_process(next, dir + "/state.snap"); !s.ok()) {
    return internal(fmt::format("restoring VM '{}' from '{}': {}", name, snap, s.message()));
  }
  return Reply::ok(vm_json(next, false));
}

Reply Daemon::delete_snapshot(const std::string& name, const std::string& snap) {
  Reply err;
  auto vm = acquire(name, "delete snapshot", err);
  if (!vm.ok()) return err;
  BusyGuard guard(*this, name);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = registry_->delete_snapshot(name, snap); !s.ok()) return Reply::error(404, "NotFound", s.message());
  }
  std::error_code ec;
  fs::remove_all(VmPaths::of(options_.state_dir, name).snapshot_dir(snap), ec);
  return Reply::ok({{"deleted", snap}});
}

// ---- supervision -----------------------------------------------------------------------

namespace {

// Seconds since the process started (its start time in clock ticks after boot).
double process_age_s(uint64_t start_ticks) {
  std::ifstream in("/proc/uptime");
  double uptime = 0;
  if (!(in >> uptime)) return 0;
  return uptime - static_cast<double>(start_ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

// Before the monitor runs and before any VM is started: every live VMM process is either
// adopted by exactly one VM or killed (docs: recovery.h).
void Daemon::recover() {
  std::vector<VmRecord> vms;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto r = registry_->list_vms();
    if (r.ok()) vms = *r;
  }
  recover_orphan_cgroups(vms);
  std::vector<VmRecord> to_restart;
  for (const VmRecord& vm : vms) {
    const VmPaths p = VmPaths::of(options_.state_dir, vm.name);
    VmmFindings found;
    found.live = live_vmms(vm);
    // Only a process that is a VMM of this VM may answer for it (anything else in its
    // cgroup is killed without waiting).
    if (found.live.size() == 1 && is_vmm_of(found.live.front(), vm)) {
      // A VMM started just before nimbusd died may not listen yet: it gets the 20 s that
      // start_process would have given it.
      const pid_t pid = found.live.front();
      auto st = read_proc_stat(pid);
      const double wait_s = st.ok() ? std::max(0.0, 20.0 - process_age_s(st->start_ticks)) : 0.0;
      const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000));
      for (;;) {
        auto info = VmmLink(p.api_sock).info(2000);
        if (info.ok()) {
          found.answers = true;
          found.vmm_state = info->value("state", std::string());
          found.ready = info->contains("agent") && (*info)["agent"].value("ready", false);
          found.start_ticks = st.ok() ? st->start_ticks : 0;
          break;
        }
        if (Clock::now() >= deadline || live_vmms(vm).empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (found.answers && live_vmms(vm) != found.live) {
        // It changed under us (ended, or another appeared): decide again from nothing safe.
        found.answers = false;
        found.live = live_vmms(vm);
      }
    }
    found.disk_ok = true;  // for "creating": decided below, once no VMM can hold the disk
    RecoveryPlan plan = plan_recovery(vm, found);
    if (plan.kill && !kill_vmms(vm, 10000)) {
      // Should not happen (SIGKILL); leave the row saying a process is there so nothing
      // starts a second one.
      continue;
    }
    if (vm.state == "creating" && !plan.adopt) {
      // The creation never reached its client and no guest of it runs: whatever it left
      // (a disk half written, or not yet given to the VM's uid) is made again from the image.
      found.live.clear();
      found.disk_ok = rebuild_disk(vm).ok();
      plan = plan_recovery(vm, found);
    }
    if (plan.adopt) {
      std::lock_guard<std::mutex> lock(mu_);
      ready_[vm.name] = plan.ready;
    }
    if (plan.remove) {
      std::error_code ec;
      fs::remove_all(p.dir, ec);
      if (cgroups_->version() != CgroupVersion::kNone) (void)cgroups_->remove(vm.name);
      std::lock_guard<std::mutex> lock(mu_);
      (void)registry_->delete_vm(vm.name);
      continue;
    }
    if (!plan.adopt && cgroups_->version() != CgroupVersion::kNone && plan.next.pid == 0) {
      (void)cgroups_->remove(vm.name);  // an empty group left by a crash
    }
    if (plan.save) (void)save(plan.next);
    if (plan.restart) to_restart.push_back(plan.next);
  }
  // Only now, with every stray gone, start what the restart policies ask for.
  for (VmRecord& vm : to_restart) {
    Reply err;
    auto held = acquire(vm.name, "restart", err);
    if (!held.ok()) continue;
    BusyGuard guard(*this, vm.name);
    vm.restarts++;
    (void)start_process(vm);
  }
}

// Groups under our cgroup parent that belong to no VM (the VM was deleted by a nimbusd that
// died before removing the group): their processes have nothing to account them to.
void Daemon::recover_orphan_cgroups(const std::vector<VmRecord>& vms) {
  if (cgroups_->version() == CgroupVersion::kNone) return;
  std::set<std::string> known;
  for (const VmRecord& v : vms) known.insert(v.name);
  for (const std::string& group : cgroups_->groups()) {
    if (known.count(group) != 0 || !valid_name(group)) continue;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (;;) {
      const std::vector<pid_t> pids = cgroups_->processes(group);
      if (pids.empty() || Clock::now() >= deadline) break;
      for (pid_t pid : pids) ::kill(pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    (void)cgroups_->remove(group);
  }
}

void Daemon::monitor_loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(monitor_mu_);
      monitor_cv_.wait_for(lock, std::chrono::milliseconds(options_.monitor_interval_ms), [this] { return quit_; });
      if (quit_) return;
    }
    monitor_once();
  }
}

void Daemon::monitor_once() {
  std::vector<VmRecord> to_restart, to_probe;
  const time_t now = ::time(nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    reap_children_locked();
    auto vms = registry_->list_vms();
    if (!vms.ok()) return;
    for (VmRecord& vm : *vms) {
      if (busy_.count(vm.name) != 0 || vm.pid == 0) continue;
      const auto pid = static_cast<pid_t>(vm.pid);
      const bool alive = exits_.count(pid) == 0 && (children_.count(pid) != 0 || same_process(pid, vm.pid_start));
      if (alive) {
        if (vm.state == "starting") to_probe.push_back(vm);
        continue;
      }
      bool clean = false;
      vm.last_exit = exit_description_locked(vm, &clean);
      vm.pid = 0;
      vm.pid_start = 0;
      ready_[vm.name] = false;
      bool restart = false;
      if (clean) {
        vm.state = "stopped";
        restart = vm.restart_policy == "always" && vm.desired_state != "stopped";
      } else {
        vm.state = "crashed";
        restart = vm.restart_policy != "no" && vm.desired_state != "stopped";
      }
      if (restart) {
        auto& times = restart_times_[vm.name];
        std::erase_if(times, [now](time_t t) { return now - t > 60; });
        if (times.size() >= 5) {
          restart = false;
          vm.last_exit += "; not restarted: 5 restarts in the last minute";
        } else {
          times.push_back(now);
        }
      }
      if (!restart) vm.desired_state = "stopped";
      (void)registry_->update_vm(vm);
      if (cgroups_->version() != CgroupVersion::kNone) (void)cgroups_->remove(vm.name);
      if (restart) {
        busy_[vm.name] = "restart after a crash";
        to_restart.push_back(vm);
      }
    }
  }
  for (VmRecord& vm : to_restart) {
    BusyGuard guard(*this, vm.name);
    vm.restarts++;
    (void)start_process(vm);
  }
  for (VmRecord& vm : to_probe) {
    auto info = VmmLink(VmPaths::of(options_.state_dir, vm.name).api_sock).info(1000);
    const bool ready = info.ok() && info->contains("agent") && (*info)["agent"].value("ready", false);
    const double uptime = info.ok() ? info->value("uptime_s", 0.0) : 0.0;
    if (!ready && uptime < options_.ready_timeout_s) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (busy_.count(vm.name) != 0) continue;
    auto cur = registry_->get_vm(vm.name);
    if (!cur.ok() || !cur->has_value() || (**cur).pid != vm.pid || (**cur).state != "starting") continue;
    VmRecord v = **cur;
    v.state = "running";
    ready_[v.name] = ready;
    (void)registry_->update_vm(v);
  }
}

// ---- metrics ---------------------------------------------------------------------------

std::string Daemon::metrics() {
  Reply host = host_info();
  Reply vms = list_vms();
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  const json& h = host.body;
  metric("nimbus_host_vcpus", "gauge", "vCPUs of the host: capacity (after overcommit), allocated, available");
  for (const char* k : {"capacity", "allocated", "available"}) {
    out += fmt::format("nimbus_host_vcpus{{kind=\"{}\"}} {}\n", k, h["cpus"].value(k, 0.0));
  }
  metric("nimbus_host_memory_bytes", "gauge", "memory for VMs: capacity, allocated (RAM + overhead), available");
  for (const char* k : {"capacity", "allocated", "available"}) {
    out += fmt::format("nimbus_host_memory_bytes{{kind=\"{}\"}} {}\n", k,
                       static_cast<uint64_t>(h["memory_mib"].value(k, 0.0)) << 20);
  }
  metric("nimbus_host_disk_bytes", "gauge", "disk for VMs: capacity, allocated, available");
  for (const char* k : {"capacity", "allocated", "available"}) {
    out += fmt::format("nimbus_host_disk_bytes{{kind=\"{}\"}} {}\n", k,
                       static_cast<uint64_t>(h["disk_mib"].value(k, 0.0)) << 20);
  }
  metric("nimbus_host_vms", "gauge", "VMs defined on the host and VMs with a running VMM process");
  out += fmt::format("nimbus_host_vms{{kind=\"total\"}} {}\n", h["vms"].value("total", 0));
  out += fmt::format("nimbus_host_vms{{kind=\"running\"}} {}\n", h["vms"].value("running", 0));
  struct Series {
    const char* name;
    const char* type;
    const char* help;
    std::function<double(const json&)> value;
  };
  const std::vector<Series> series = {
      {"nimbus_vm_up", "gauge", "1 when the VM's VMM process runs", [](const json& v) { return v["pid"].is_null() ? 0.0 : 1.0; }},
      {"nimbus_vm_vcpus", "gauge", "vCPUs of the VM", [](const json& v) { return v.value("cpus", 0.0); }},
      {"nimbus_vm_memory_limit_bytes", "gauge", "guest RAM of the VM",
       [](const json& v) { return v.value("memory_mib", 0.0) * 1048576.0; }},
      {"nimbus_vm_cpu_seconds_total", "counter", "host CPU time of the VMM process",
       [](const json& v) { return v["usage"].value("cpu_seconds", 0.0); }},
      {"nimbus_vm_resident_memory_bytes", "gauge", "resident memory of the VMM process (guest RAM touched + overhead)",
       [](const json& v) { return v["usage"].value("memory_mib", 0.0) * 1048576.0; }},
      {"nimbus_vm_disk_used_bytes", "gauge", "host disk space used by the VM's overlay",
       [](const json& v) { return v["usage"].value("disk_used_mib", 0.0) * 1048576.0; }},
      {"nimbus_vm_disk_read_bytes_total", "counter", "bytes the guest read from its disk",
       [](const json& v) { return v["usage"].value("disk_read_bytes", 0.0); }},
      {"nimbus_vm_disk_written_bytes_total", "counter", "bytes the guest wrote to its disk",
       [](const json& v) { return v["usage"].value("disk_write_bytes", 0.0); }},
      {"nimbus_vm_network_receive_bytes_total", "counter", "bytes received by the guest's NICs",
       [](const json& v) { return v["usage"].value("net_rx_bytes", 0.0); }},
      {"nimbus_vm_network_transmit_bytes_total", "counter", "bytes sent by the guest's NICs",
       [](const json& v) { return v["usage"].value("net_tx_bytes", 0.0); }},
      {"nimbus_vm_restarts_total", "counter", "times nimbusd restarted the VM after it ended",
       [](const json& v) { return v.value("restarts", 0.0); }},
  };
  const json list = vms.body.value("vms", json::array());
  metric("nimbus_vm_state", "gauge", "1 for the VM's current state");
  for (const json& v : list) {
    out += fmt::format("nimbus_vm_state{{vm=\"{}\",state=\"{}\"}} 1\n", v.value("name", ""), v.value("state", ""));
  }
  for (const Series& s : series) {
    metric(s.name, s.type, s.help);
    for (const json& v : list) out += fmt::format("{}{{vm=\"{}\"}} {}\n", s.name, v.value("name", ""), s.value(v));
  }
  return out;
}

}  // namespace nimbus::host
