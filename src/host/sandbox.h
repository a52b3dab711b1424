// Confining a VMM process: its own uid (set by nimbusd in the forked child before exec) and
// a seccomp filter (installed by `nimbus vmm --sandbox` once its sockets are open).
#pragma once

#include <sys/types.h>

#include "common/status.h"

namespace nimbus::host {

// For a forked child before exec: drops every supplementary group, then sets the real,
// effective and saved gid and uid, then no_new_privs. Uses only async-signal-safe calls
// (raw syscalls: glibc's set*id wrappers synchronise threads, which a forked child has
// not). Returns 0, or the errno of the step that failed; the caller must not exec then.
int drop_privileges_in_child(uid_t uid, gid_t gid) noexcept;

// Whether the kernel can load seccomp filters (CONFIG_SECCOMP_FILTER).
bool seccomp_supported();

// Sets no_new_privs and loads, into every thread of the process (TSYNC), a filter that
// allows everything except what a VMM never needs; those fail with EPERM:
//   running programs (execve, execveat), other processes' memory (ptrace,
//   process_vm_readv/writev), namespaces (unshare, setns, clone with CLONE_NEWUSER),
//   file systems (mount, umount2, pivot_root, chroot, swapon/off, quotactl, mknod(at),
//   open_by_handle_at, name_to_handle_at, lookup_dcookie), the kernel (reboot, kexec_*,
//   *_module, bpf, perf_event_open, keyctl, add_key, request_key, userfaultfd, iopl,
//   ioperm, personality, acct, syslog, vhangup), the clock (settimeofday, clock_settime,
//   adjtimex) and identities (setuid, setgid, setre*id, setres*id, setgroups, setfs*id).
// clone3 fails with ENOSYS instead: its flags are behind a pointer the filter cannot
// read, and ENOSYS makes glibc create threads with clone, whose flags it can.
// Syscalls this architecture lacks are skipped. Not reversible.
Status install_vmm_seccomp_filter();

}  // namespace nimbus::host
