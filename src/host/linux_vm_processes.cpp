#include "host/linux_vm_processes.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "host/proc_info.h"
#include "host/recovery.h"
#include "host/vm_launcher.h"
#include "host/vmm_link.h"
#include "host/vmm_pidfile.h"
#include "sandbox/sandbox.h"

namespace nimbus::host {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("the VMM exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return fmt::format("the VMM was killed by signal {} (SIG{})", sig, name ? name : "?");
  }
  return "the VMM ended";
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

bool running(pid_t pid) {
  auto st = read_proc_stat(pid);
  return st.ok() && st->state != 'Z' && st->state != 'X';
}

}  // namespace

LinuxVmProcesses::LinuxVmProcesses(LinuxVmProcessesOptions options, CgroupManager cgroups)
    : options_(std::move(options)), cgroups_(std::move(cgroups)) {}

std::string LinuxVmProcesses::api_sock(const std::string& vm) const {
  return VmPaths::of(options_.state_dir, vm).api_sock;
}

void LinuxVmProcesses::reap_locked() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    children_.erase(pid);
    exits_[pid] = status;
  }
}

Result<SpawnedVmm> LinuxVmProcesses::spawn(const VmRecord& vm, const std::string& snapshot_file) {
  return spawn_with(vm, snapshot_file, "");
}

Result<SpawnedVmm> LinuxVmProcesses::spawn_incoming(const VmRecord& vm, const std::string& listen) {
  return spawn_with(vm, "", listen);
}

Result<nlohmann::json> LinuxVmProcesses::migration(const std::string& vm, const std::string& method,
                                                   const nlohmann::json& body) {
  return VmmLink(api_sock(vm)).migration(method, body);
}

Result<SpawnedVmm> LinuxVmProcesses::spawn_with(const VmRecord& vm,
                                                const std::string& snapshot_file,
                                                const std::string& incoming) {
  const VmPaths p = VmPaths::of(options_.state_dir, vm.name);
  std::error_code ec;
  fs::remove(p.exit_file, ec);
  SpawnSpec spec;
  spec.exe = options_.vmm_exe;
  spec.args = {"vmm",         "--api-sock",     p.api_sock,     "--console",
               "none",        "--console-sock", p.console_sock, "--console-log",
               p.console_log, "--id",           vm.name,        "--exit-on-stop",
               "--exit-file", p.exit_file};
  if (options_.sandbox && sandbox::seccomp_supported()) spec.args.push_back("--sandbox");
  if (snapshot_file.empty()) {
    spec.args.insert(spec.args.end(), {"--config", p.config});
    if (!incoming.empty()) spec.args.insert(spec.args.end(), {"--incoming", incoming});
  } else {
    spec.args.insert(spec.args.end(), {"--restore", snapshot_file});
  }
  spec.log_path = p.vmm_log;
  spec.pid_file = p.pid_file;
  spec.cwd = p.dir;
  spec.drop_privileges = vm.uid != 0;
  spec.uid = vm.uid;
  spec.gid = options_.vm_gid;
  if (has_cgroups()) {
    CgroupLimits limits;
    limits.vcpus = vm.cpus;
    limits.memory_bytes = (vm.memory_mib + options_.vm_overhead_mib) << 20;
    if (Status s = cgroups_.create(vm.name, limits); !s.ok())
      return s.with_context("creating its cgroup");
    spec.cgroup_procs = cgroups_.procs_files(vm.name);
  }
  std::lock_guard<std::mutex> lock(mu_);  // a child is in children_ before anyone reaps it
  auto pid = spawn_vmm(spec);
  if (!pid.ok()) return pid.status();
  children_.insert(*pid);
  auto st = read_proc_stat(*pid);
  return SpawnedVmm{*pid, st.ok() ? st->start_ticks : 0};
}

bool LinuxVmProcesses::alive(const VmRecord& vm) {
  if (vm.pid <= 0) return false;
  std::lock_guard<std::mutex> lock(mu_);
  reap_locked();
  const auto pid = static_cast<pid_t>(vm.pid);
  if (exits_.count(pid) != 0) return false;
  if (children_.count(pid) != 0) return true;
  return same_process(pid, vm.pid_start);
}

bool LinuxVmProcesses::is_vmm_of(pid_t pid, const VmRecord& vm) {
  if (!running(pid)) return false;
  // The pidfile is in a directory the VMM owns: a compromised VMM could write any pid into
  // it. Only a process that is a VMM of this very VM (and runs under its uid) counts.
  auto cmd = proc_cmdline(pid);
  if (!cmd.ok() || (" " + *cmd + " ").find(" --id " + vm.name + " ") == std::string::npos)
    return false;
  return vm.uid == 0 || process_uid(pid) == static_cast<int64_t>(vm.uid);
}

std::vector<pid_t> LinuxVmProcesses::live_vmms(const VmRecord& vm) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reap_locked();
  }
  // Everything in the VM's cgroup is a VMM of the VM (only root can move processes in).
  std::vector<pid_t> in_cgroup;
  if (has_cgroups()) in_cgroup = cgroups_.processes(vm.name);
  std::vector<pid_t> candidates = in_cgroup;
  if (auto holder = pidfile_holder(VmPaths::of(options_.state_dir, vm.name).pid_file))
    candidates.push_back(*holder);
  std::vector<pid_t> out = live_pids(candidates, [&](pid_t pid) {
    if (std::find(in_cgroup.begin(), in_cgroup.end(), pid) != in_cgroup.end()) return running(pid);
    return is_vmm_of(pid, vm);
  });
  if (alive(vm) && std::find(out.begin(), out.end(), static_cast<pid_t>(vm.pid)) == out.end()) {
    out.push_back(static_cast<pid_t>(vm.pid));
    std::sort(out.begin(), out.end());
  }
  return out;
}

void LinuxVmProcesses::kill(pid_t pid) {
  if (pid > 0) ::kill(pid, SIGKILL);
}

double LinuxVmProcesses::age_s(pid_t pid) {
  auto st = read_proc_stat(pid);
  if (!st.ok()) return 0;
  std::ifstream in("/proc/uptime");
  double uptime = 0;
  if (!(in >> uptime)) return 0;
  return uptime -
         static_cast<double>(st->start_ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

uint64_t LinuxVmProcesses::start_ticks(pid_t pid) {
  auto st = read_proc_stat(pid);
  return st.ok() ? st->start_ticks : 0;
}

VmmExit LinuxVmProcesses::take_exit(const VmRecord& vm) {
  VmmExit out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reap_locked();
    auto it = exits_.find(static_cast<pid_t>(vm.pid));
    if (it != exits_.end()) {
      out.description = describe_wait_status(it->second);
      out.clean = WIFEXITED(it->second) && WEXITSTATUS(it->second) == 0;
      exits_.erase(it);
    }
  }
  // The VMM leaves "STATUS REASON" when it exits by itself (our only word on a process we
  // re-adopted and so cannot wait for).
  std::ifstream in(VmPaths::of(options_.state_dir, vm.name).exit_file);
  int status = -1;
  std::string reason;
  if (in >> status) {
    std::getline(in >> std::ws, reason);
    if (out.description.empty()) {
      out.description = fmt::format("the VMM exited with status {}", status);
      out.clean = status == 0;
    }
    if (!reason.empty()) out.description += " (" + reason + ")";
    // The machine failed (the VMM itself exits normally then): that is a crash of the VM.
    if (reason.rfind("failure", 0) == 0) out.clean = false;
    out.migrated = out.clean && reason == "migrated";
  }
  if (out.description.empty()) out.description = "the VMM process disappeared";
  return out;
}

std::string LinuxVmProcesses::last_log_line(const VmRecord& vm) {
  return host::last_log_line(VmPaths::of(options_.state_dir, vm.name).vmm_log);
}

std::optional<ProcessUsage> LinuxVmProcesses::usage(const VmRecord& vm) {
  if (vm.pid == 0) return std::nullopt;
  auto st = read_proc_stat(static_cast<pid_t>(vm.pid));
  if (!st.ok() || st->start_ticks != vm.pid_start) return std::nullopt;
  return ProcessUsage{st->cpu_seconds, st->rss_bytes};
}

std::string LinuxVmProcesses::cgroup_path(const std::string& vm) const {
  return has_cgroups() ? cgroups_.path(vm) : "";
}

Status LinuxVmProcesses::remove_cgroup(const std::string& vm) {
  if (!has_cgroups()) return {};
  return cgroups_.remove(vm);
}

std::vector<std::string> LinuxVmProcesses::cgroup_groups() {
  return has_cgroups() ? cgroups_.groups() : std::vector<std::string>{};
}

std::vector<pid_t> LinuxVmProcesses::cgroup_processes(const std::string& group) {
  return has_cgroups() ? cgroups_.processes(group) : std::vector<pid_t>{};
}

Result<VmmStatus> LinuxVmProcesses::info(const std::string& vm, int timeout_ms) {
  const std::string sock = api_sock(vm);
  std::error_code ec;
  if (!fs::exists(sock, ec))
    return Status::unavailable(fmt::format("the VMM's API socket {} does not exist", sock));
  auto r = VmmLink(sock).info(timeout_ms);
  if (!r.ok()) return r.status().with_code(Code::kUnavailable);
  const json& j = *r;
  VmmStatus s;
  if (!j.is_object()) return s;
  s.state = j.value("state", std::string());
  s.agent_ready = j.contains("agent") && j["agent"].is_object() && j["agent"].value("ready", false);
  s.uptime_s = j.value("uptime_s", 0.0);
  if (j.contains("devices") && j["devices"].is_object()) {
    s.has_devices = true;
    for (const json& d : j["devices"].value("drives", json::array())) {
      s.disk_read_bytes += d.value("bytes_read", uint64_t{0});
      s.disk_write_bytes += d.value("bytes_written", uint64_t{0});
    }
    for (const json& n : j["devices"].value("network-interfaces", json::array())) {
      s.net_rx_bytes += n.value("rx_bytes", uint64_t{0});
      s.net_tx_bytes += n.value("tx_bytes", uint64_t{0});
    }
  }
  return s;
}

Status LinuxVmProcesses::pause(const std::string& vm) { return VmmLink(api_sock(vm)).pause(); }
Status LinuxVmProcesses::resume(const std::string& vm) { return VmmLink(api_sock(vm)).resume(); }
Result<bool> LinuxVmProcesses::shutdown(const std::string& vm, unsigned timeout_s) {
  return VmmLink(api_sock(vm)).shutdown(timeout_s);
}
Status LinuxVmProcesses::stop(const std::string& vm) { return VmmLink(api_sock(vm)).stop(); }
Status LinuxVmProcesses::set_forwards(const std::string& vm,
                                      const std::vector<config::PortForward>& forwards) {
  return VmmLink(api_sock(vm)).set_forwards(kUserNic, forwards);
}

Status LinuxVmProcesses::set_metadata(const std::string& vm,
                                      const config::MetadataConfig& metadata) {
  return VmmLink(api_sock(vm)).set_metadata(metadata);
}
Status LinuxVmProcesses::snapshot_create(const std::string& vm, const std::string& path) {
  return VmmLink(api_sock(vm)).snapshot_create(path);
}

}  // namespace nimbus::host
