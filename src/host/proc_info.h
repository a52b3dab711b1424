// What /proc says about one process: state, start time, CPU time, resident memory and
// command line. nimbusd uses it to tell whether a recorded VMM pid is still that VMM
// (pids are reused: a pid plus its start time identifies a process) and for usage figures.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/status.h"

namespace nimbus::host {

struct ProcStat {
  char state = '?';  // R, S, D, Z (zombie), T, t, X, I, ... (/proc/PID/stat field 3)
  uint64_t start_ticks =
      0;  // start time in clock ticks after boot (field 22): constant for a process
  double cpu_seconds = 0;  // user + system time of the process (its reaped children not included)
  uint64_t rss_bytes = 0;  // resident set size (field 24 pages x page size; 0 for a zombie)
};

// Parses /proc/PID/stat. The command name (field 2) may hold spaces and ')': fields are
// counted from the last ')'. Fails with "no process PID" when the process is gone.
Result<ProcStat> read_proc_stat(pid_t pid);

// Whether `pid` is alive (not a zombie), and started at `start_ticks`: the same process
// that was recorded, not a later one that reuses its pid.
bool same_process(pid_t pid, uint64_t start_ticks);

// A pidfd for `pid` (pidfd_open(2), close-on-exec), or -1 with errno set (ENOSYS on
// kernels before 5.3, ESRCH for no such process).
int open_pidfd(pid_t pid);

// /proc/PID/cmdline with the arguments joined by spaces; "" for a zombie or kernel thread.
Result<std::string> proc_cmdline(pid_t pid);

}  // namespace nimbus::host
