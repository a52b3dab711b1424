// What nimbusd does with one VM when it starts (Daemon::recover), as a pure function so
// every case can be tested without processes.
//
// The facts are gathered first (VmmFindings): the live VMM processes of the VM — those in
// its cgroup, the holder of its pidfile lock (docs: vmm_pidfile.h) and the pid recorded in
// the database if it is still that process — whether the one live VMM answers on its API
// socket, and, for a VM whose creation was interrupted, whether its disk is whole.
//
//   one live VMM that answers      adopted: pid, state from the VMM (paused / running /
//                                  starting); a VM still "creating" wanted to run
//   several, or one that does not  all killed (and the cgroup emptied) before anything
//   answer                         else starts; then as if none were found
//   none, VM "creating"            finished as "stopped" when its disk could be made
//                                  again from the image (disk_ok), else rolled back
//                                  (row and directory removed)
//   none, recorded pid             left to the monitor (it reports how the VMM ended and
//                                  applies the restart policy)
//   none, should run               "crashed"; started again if the policy says so
//   none, otherwise                "stopped" unless already stopped or crashed
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "host/registry.h"

namespace nimbus::host {

struct VmmFindings {
  std::vector<pid_t> live;   // live VMM processes of the VM, sorted, no duplicates
  bool answers = false;      // live.size() == 1 and its API socket answered
  std::string vmm_state;     // the VMM's "state" when it answered ("Running", "Paused", ...)
  bool ready = false;        // its guest agent said ready
  uint64_t start_ticks = 0;  // the adopted process's start time (/proc)
  bool disk_ok = false;      // "creating" only: a fresh overlay of its image is in place
};

struct RecoveryPlan {
  bool kill = false;     // SIGKILL every process in findings.live first
  bool adopt = false;    // next.pid is a running VMM to keep
  bool remove = false;   // roll back: delete the row and the VM's directory
  bool save = false;     // store `next`
  bool restart = false;  // then start it (restart policy)
  bool ready = false;    // the adopted guest's agent said ready
  VmRecord next;
};

RecoveryPlan plan_recovery(const VmRecord& vm, const VmmFindings& found);

// The union of the candidates that `alive` accepts, sorted and without duplicates.
template <typename Alive>
std::vector<pid_t> live_pids(const std::vector<pid_t>& candidates, Alive&& alive);

}  // namespace nimbus::host

#include <algorithm>

template <typename Alive>
std::vector<pid_t> nimbus::host::live_pids(const std::vector<pid_t>& candidates, Alive&& alive) {
  std::vector<pid_t> out;
  for (pid_t p : candidates) {
    if (p > 0 && alive(p)) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}
