// Confining a VMM process: its own uid (set by nimbusd in the forked child before exec) and
// a seccomp filter (installed by `nimbus vmm --sandbox` once its sockets are open).
#pragma once

#include <sys/types.h>

#include "common/status.h"

namespace nimbus::sandbox {

// For a forked child before exec: drops every supplementary group, then sets the real,
// effective and saved gid and uid, then no_new_privs. Uses only async-signal-safe calls
// (raw syscalls: glibc's set*id wrappers synchronise threads, which a forked child has
// not). Returns 0, or the errno of the step that failed; the caller must not exec then.
//
// With `keep_net_bind_service` (a root caller) the process keeps exactly one capability
// through the uid change and the exec that follows: CAP_NET_BIND_SERVICE, so the VMM can
// listen on ports below 1024 for its forwards (a public address's port 80). Every other
// capability leaves the bounding set first; the one kept is permitted, effective,
// inheritable and ambient (what carries it over exec of a program without file
// capabilities, no_new_privs notwithstanding).
int drop_privileges_in_child(uid_t uid, gid_t gid, bool keep_net_bind_service = false) noexcept;

// Whether the kernel can load seccomp filters (CONFIG_SECCOMP_FILTER).
bool seccomp_supported();

// Sets no_new_privs and loads, into every thread of the process (TSYNC), an allowlist of
// what a VMM does (sandbox.cpp lists it, with where it comes from); every other syscall
// fails with EPERM. Left out, among others: running programs (execve), other processes
// (ptrace, process_vm_*, kill with a signal, pidfd_*), namespaces (unshare, setns, clone
// with a CLONE_NEW* flag), file systems (mount, pivot_root, chroot, mknod, *_by_handle_at),
// names that could plant or alias files (link, linkat, symlink, symlinkat, rmdir, chmod,
// chown and their variants), the kernel (bpf, perf_event_open, keyctl, add_key,
// io_uring_*, userfaultfd, *_module, kexec_*, reboot, iopl, personality, syslog...), the
// clock and identities (settimeofday, set*id, setgroups). Arguments are checked where
// a syscall is needed for one use only: kill only with signal 0 (is that process alive),
// ioctl only for termios, FIONREAD/FIONBIO/FIOCLEX and BLKGETSIZE64, socket and
// socketpair only for unix, IPv4 and IPv6. Renaming and unlinking stay allowed (snapshots
// are written and renamed, sockets replaced): which files is up to the VM's uid, which
// can write only in its own directories.
// clone3 fails with ENOSYS instead: its flags are behind a pointer the filter cannot
// read, and ENOSYS makes glibc create threads with clone, whose flags it can.
// Syscalls of other ABIs (i386, x32) kill the process (libseccomp's bad-arch action).
// Syscalls this architecture lacks are skipped. Not reversible.
Status install_vmm_seccomp_filter();

}  // namespace nimbus::sandbox
