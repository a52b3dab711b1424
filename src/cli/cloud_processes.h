// The processes `nimbus cloud up` starts and `down` stops: daemons in sessions of their
// own with their output in a log file, found again later by pid (checked against their
// command line, so a pid reused by another program is never signalled).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::cli {

// The executable `name` in the directory of the running program ("" when it is not there
// or not executable).
std::string find_beside_self(const std::string& name);

// Starts `exe args...` as a daemon: a new session (setsid), stdin from /dev/null, stdout
// and stderr appended to `log`. The child is ours until this program exits, so an early
// exit can be seen with child_exit.
Result<pid_t> spawn_daemon(const std::string& exe, const std::vector<std::string>& args,
                           const std::string& log);

// How our child `pid` ended ("exit status 2", "killed by signal 9"), once it has, and reaps
// it; nullopt while it runs (or when it is not our child).
std::optional<std::string> child_exit(pid_t pid);

// Whether `pid` is a child of this process that has not ended.
bool child_running(pid_t pid);

// Whether `pid` runs (not a zombie) and its command line contains `needle`.
bool process_matches(pid_t pid, const std::string& needle);

// SIGTERM, then SIGKILL when it is still there after `grace`; waits for it to go (our
// child is reaped). "stopped", "killed", or "gone" (it was not running).
std::string stop_process(pid_t pid, std::chrono::milliseconds grace);

// The last non-empty line of a log file ("" when none), at most 300 characters.
std::string last_log_line(const std::string& path);

// A TCP port on 127.0.0.1 that nobody listens on now.
Result<int> free_local_port();

// Writes a new random token (64 hex digits) to `path`, mode 0600.
Status write_token_file(const std::string& path);

// Reads the first line of a token file (trimmed); kInvalidArgument with why otherwise.
Result<std::string> read_token(const std::string& path);

}  // namespace nimbus::cli
