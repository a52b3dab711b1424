// The VMM pidfile: STATE_DIR/vms/NAME/vmm.pid, "PID\n", written by the forked child before
// it execs the VMM, and held with an exclusive OFD lock (fcntl F_OFD_SETLK) on a file
// descriptor the VMM inherits and never closes. The lock lives exactly as long as the VMM
// process, so it tells whether a VM has a live VMM even when nimbusd died before it could
// record the pid (and unlike a bare pid, it cannot be fooled by pid reuse).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace nimbus::host {

// For a forked child before exec (async-signal-safe: open, fcntl, ftruncate, write). Opens
// `path` (created mode 0644, no close-on-exec), takes the exclusive lock without waiting,
// and writes the caller's pid. Returns 0, or the errno of the failure (EAGAIN or EACCES:
// another live process holds the lock, i.e. the VM already has a VMM). On success the
// file descriptor stays open on purpose: the lock goes with it.
int pidfile_lock_in_child(const char* path) noexcept;

// The pid recorded in `path` if a live process holds its lock; nullopt when the file is
// missing, unreadable or not locked (a stale pidfile of a VMM that has ended). Only tests
// the lock (F_OFD_GETLK): never takes it, so it cannot disturb a VMM being started.
std::optional<pid_t> pidfile_holder(const std::string& path);

}  // namespace nimbus::host
