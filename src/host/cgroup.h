// One cgroup per VM: the VMM process's CPU quota and memory limit, and its usage.
//
// cgroup v2 (the unified hierarchy, ROOT/cgroup.controllers exists): the VM's group is
// ROOT/PARENT/VM, with the cpu and memory controllers enabled in ROOT's and PARENT's
// cgroup.subtree_control. cgroup v1: a group ROOT/H/PARENT/VM in each of the cpu,
// cpuacct (if mounted; it may be joined with cpu as cpu,cpuacct) and memory hierarchies H.
//
// Limits: the CPU quota is vcpus x period (v1 cpu.cfs_quota_us and cpu.cfs_period_us; v2
// cpu.max "QUOTA PERIOD"); memory is capped at memory_bytes (v1 memory.limit_in_bytes and,
// where the kernel accounts swap, memory.memsw.limit_in_bytes to the same figure so the
// VM cannot swap past it; v2 memory.max and memory.swap.max 0).
//
// A VMM joins its group between fork and exec: build procs_files(vm) before fork, then
// call join_in_child(files) in the child (async-signal-safe). add_process() moves a
// running process instead.
//
// VM names are single path components (no '/', not "." or ".."); nimbusd's names are
// [a-z0-9-]. Operations on a manager of version kNone fail with detect()'s reason.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::host {

enum class CgroupVersion { kNone, kV1, kV2 };

// "none", "v1", "v2" (the host object's "cgroup").
const char* to_string(CgroupVersion version);

struct CgroupLimits {
  unsigned vcpus = 0;           // CPU quota of this many host CPUs; 0: no quota
  uint64_t memory_bytes = 0;    // 0: no memory limit
  uint64_t period_us = 100000;  // CFS period, 1000 to 1000000
};

struct CgroupUsage {
  uint64_t cpu_ns = 0;  // CPU time of every process the group ever had (0 without cpuacct on v1)
  uint64_t memory_bytes = 0;  // current usage, page cache included
  std::optional<uint64_t>
      oom_kills;  // processes killed for the group's limit, if the kernel counts
};

struct CgroupLimitsRead {
  std::optional<uint64_t> quota_us;  // nullopt: no quota
  uint64_t period_us = 0;
  std::optional<uint64_t> memory_limit_bytes;  // nullopt: no limit
};

class CgroupManager {
 public:
  // Finds the cgroup layout under `root` and prepares the parent group(s) `parent`:
  // v2 if root/cgroup.controllers exists and cpu and memory can be enabled for the
  // parent's children, else v1 if the cpu and memory hierarchies are mounted and the
  // parent groups can be created, else kNone with the reason (see describe()).
  static CgroupManager detect(std::string root = "/sys/fs/cgroup", std::string parent = "nimbus");

  CgroupVersion version() const { return version_; }
  // "v1 (cpu, memory)", "v1 (cpu, cpuacct, memory)", "v2", or "none: WHY".
  std::string describe() const;

  // Creates the VM's group(s) if they do not exist and sets the limits.
  Status create(const std::string& vm, const CgroupLimits& limits);
  // Changes the limits of an existing group. Lowering memory below what the group uses
  // fails (the kernel could not reclaim enough).
  Status set_limits(const std::string& vm, const CgroupLimits& limits);

  // The cgroup.procs files a process writes "0" into to join the VM's group(s).
  std::vector<std::string> procs_files(const std::string& vm) const;
  // For a forked child before exec: joins the groups of procs_files() with open, write and
  // close only (the strings' buffers are only read). Returns 0, or the errno of the
  // first failure.
  static int join_in_child(const std::vector<std::string>& files) noexcept;
  // Moves a running process (all its threads) into the VM's group(s).
  Status add_process(const std::string& vm, pid_t pid);

  Result<CgroupUsage> usage(const std::string& vm) const;
  Result<CgroupLimitsRead> read_limits(const std::string& vm) const;
  // The group to show a user: v2 ROOT/PARENT/VM, v1 the memory hierarchy's group.
  std::string path(const std::string& vm) const;
  // The processes in the VM's group(s), sorted; empty if the group does not exist.
  std::vector<pid_t> processes(const std::string& vm) const;
  // The VM groups under the parent (in any hierarchy), sorted: nimbusd's recovery looks
  // for groups of VMs it no longer knows.
  std::vector<std::string> groups() const;

  // Removes the VM's group(s); succeeds if they do not exist. Fails, naming them, while
  // processes remain.
  Status remove(const std::string& vm);
  // Removes the parent group(s) (for tests and uninstalling); fails while VM groups remain.
  Status remove_parent();

 private:
  CgroupManager() = default;
  // ROOT/H/PARENT for each hierarchy H in use (v2: ROOT/PARENT).
  std::vector<std::string> parent_dirs() const;
  std::vector<std::string> group_dirs(const std::string& vm) const;
  Status usable(const std::string& vm) const;

  CgroupVersion version_ = CgroupVersion::kNone;
  std::string why_;  // for kNone
  std::string root_, parent_;
  // v1: the mount points under root_; cpuacct_ is empty if not mounted and equals cpu_
  // when joined with it.
  std::string cpu_, cpuacct_, memory_;
};

}  // namespace nimbus::host
