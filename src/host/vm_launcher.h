// How nimbusd lays out a VM on disk and starts its VMM process.
//
// spawn_vmm() forks and execs `nimbus vmm` so that the new process: is in a session of its
// own (it outlives nimbusd, which can re-adopt it), has joined the VM's cgroup and holds
// the lock of its pidfile before its first instruction (so a nimbusd that dies right
// after fork can still find it), writes stdout/stderr to vmm.log, and — when sandboxed — runs under
// the VM's own uid and the shared VM group with no_new_privs. Between fork and exec the
// child only makes async-signal-safe calls on strings prepared before the fork (nimbusd is
// multi-threaded).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/vm_config.h"
#include "host/image_store.h"
#include "host/registry.h"

namespace nimbus::host {

struct VmPaths {
  std::string dir, disk, config, api_sock, console_sock, console_log, vmm_log, exit_file, snapshots;
  std::string pid_file;  // vmm.pid, locked by the live VMM (vmm_pidfile.h)
  static VmPaths of(const std::string& state_dir, const std::string& vm);
  std::string snapshot_dir(const std::string& snap) const { return snapshots + "/" + snap; }
};

// The host network: every VM's second NIC is on one switch, 10.88.0.0/16, the address
// derived from the VM's slot (slot 2 -> 10.88.0.2).
constexpr unsigned kMinSlot = 2;
constexpr unsigned kMaxSlot = 65534;
std::string host_network_address(unsigned slot);
// Stable MACs per VM: 52:54:00 + (nic, slot).
std::string vm_mac(unsigned slot, unsigned nic);
// The MAC of the VM's eth0: vm_mac(slot, 0), or the one it brought when migrated here.
std::string vm_user_mac(const VmRecord& vm);
// The MAC of the VM's eth1 (the one it brought when migrated here, else): vm_mac(slot, 1) on the
// host network, network_mac on a private network (slots repeat across hosts, so their MACs would
// too).
std::string vm_host_mac(const VmRecord& vm);
// The guest's address on the user-mode (slirp) network.
constexpr const char* kUserNetAddress = "10.0.2.15";
// The id of the user-mode NIC, the one with the port forwards.
constexpr const char* kUserNic = "eth0";

// The VMM configuration of a VM: its image's kernel, its overlay disk as the root drive,
// eth0 on the user-mode network with its port forwards, eth1 on `switch_path` (the host
// switch, or its private network's) configured by the kernel from ip=, an entropy device.
config::VmConfig make_vmm_config(const VmRecord& vm, const ImageInfo& image, const VmPaths& paths,
                                 const std::string& switch_path);

struct SpawnSpec {
  std::string exe;                        // the nimbus binary
  std::vector<std::string> args;          // argv[1..]
  std::string log_path;                   // stdout and stderr (appended)
  std::string cwd;                        // working directory (the VM's directory)
  std::vector<std::string> cgroup_procs;  // cgroup.procs files to join
  // Written and locked by the child after it joined its cgroup, before exec
  // (vmm_pidfile.h); the child gives up if a live VMM already holds it. Empty: none.
  std::string pid_file;
  bool drop_privileges = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Starts the process; the error says what failed in the child if it could not exec.
Result<pid_t> spawn_vmm(const SpawnSpec& spec);

// The last non-empty line of a log file (at most 400 bytes), for error messages.
std::string last_log_line(const std::string& path);

}  // namespace nimbus::host
