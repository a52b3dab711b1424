#include "sandbox/sandbox.h"

#include <errno.h>
#include <fmt/format.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace nimbus::sandbox {

namespace {

// What a VMM does, and so all it may do (see sandbox.h for what is left out and why).
// Taken from strace -f of `nimbus vmm` under nimbusd (boot of the bundled image with a
// qcow2 disk, a user-mode NIC with a port forward and a switch NIC, ping over the switch,
// pause, snapshot, restore, shutdown), the slirp/console/disk/API unit tests, and the
// code (error paths, the stdio console), plus the newer spellings glibc may pick for the
// same calls (statx, faccessat2, renameat2...): those fail with EPERM and glibc falls
// back only on ENOSYS.
// clang-format off
constexpr const char* kAllowed[] = {
    // memory
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "memfd_create",
    "membarrier",
    // threads, time, scheduling (clone, kill, socket, ioctl: with argument checks below)
    "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "arch_prctl",
    "exit", "exit_group", "wait4", "waitid", "gettid", "getpid", "getppid", "getuid",
    "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "tgkill",
    "sched_yield", "sched_getaffinity", "nanosleep", "clock_nanosleep", "clock_gettime",
    "clock_getres", "gettimeofday", "time", "getrusage", "times", "sysinfo", "uname",
    "getrlimit", "prlimit64", "getrandom", "prctl", "seccomp", "umask",
    // signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigpending",
    "rt_sigsuspend", "sigaltstack", "restart_syscall",
    // descriptors and waiting
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl",
    "pipe", "pipe2", "eventfd", "eventfd2", "poll", "ppoll", "select", "pselect6",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2",
    // files: disks, snapshots (written to P.tmp, renamed), sockets, the exit file, the
    // switch's port directory. Which paths is up to the VM's uid and the directories'
    // modes: the uid can only write in its own VM and port directories.
    "open", "openat", "fstat", "stat", "lstat", "newfstatat", "statx", "fstatfs", "statfs",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getcwd", "getdents64",
    "getdents", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
    "ftruncate", "fallocate", "fsync", "fdatasync",
    // sockets (the API, the console, slirp's connections, the switch)
    "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
    "getsockopt", "setsockopt", "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg",
    "recvmmsg", "shutdown",
};
// clang-format on

// Namespaces: a thread or a fork, never a new namespace.
constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                     CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

// The ioctls in use: the stdio console's termios (isatty, tcgetattr/tcsetattr), libslirp's
// FIONREAD/FIONBIO, a raw disk's size on a block device. Not TIOCSTI and friends.
constexpr unsigned long kAllowedIoctls[] = {
    TCGETS,   TCSETS,  TCSETSW, TCSETSF,  TIOCGWINSZ,
    FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, BLKGETSIZE64,
};

// Socket families: unix (API, console, switch), IPv4 and IPv6 (slirp). Not netlink,
// packet, vsock, alg...
constexpr int kAllowedFamilies[] = {AF_UNIX, AF_INET, AF_INET6};

struct ReleaseFilter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using FilterPtr = std::unique_ptr<void, ReleaseFilter>;

Status seccomp_error(const std::string& what, int rc) {
  // libseccomp returns -errno.
  return Status::error(
      fmt::format("cannot install the VMM's seccomp filter: {}: {}", what, std::strerror(-rc)));
}

}  // namespace

namespace {

// Leaves only CAP_NET_BIND_SERVICE in the bounding set (needs CAP_SETPCAP: before the uid
// changes). The kernel says EINVAL past its last capability.
int bound_to_net_bind_service() noexcept {
  for (int cap = 0; cap < 64; cap++) {
    if (cap == CAP_NET_BIND_SERVICE) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;
      return errno;
    }
  }
  return 0;
}

// After the uid change with PR_SET_KEEPCAPS: permitted, effective and inheritable become
// CAP_NET_BIND_SERVICE alone, and it is raised in the ambient set so that exec keeps it.
int keep_net_bind_service_only() noexcept {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  const uint32_t bit = 1u << (CAP_NET_BIND_SERVICE % 32);
  data[CAP_NET_BIND_SERVICE / 32].permitted = bit;
  data[CAP_NET_BIND_SERVICE / 32].effective = bit;
  data[CAP_NET_BIND_SERVICE / 32].inheritable = bit;
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0) return errno;
  return 0;
}

}  // namespace

int drop_privileges_in_child(uid_t uid, gid_t gid, bool keep_net_bind_service) noexcept {
  // Raw syscalls: no locks, no allocation, no signals to (non-existent) other threads.
  if (keep_net_bind_service) {
    if (int err = bound_to_net_bind_service(); err != 0) return err;
    // The permitted set survives the change of uid from 0 (then capset trims it).
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return errno;
  }
  if (::syscall(SYS_setgroups, 0, nullptr) != 0) return errno;
  if (::syscall(SYS_setresgid, gid, gid, gid) != 0) return errno;
  if (::syscall(SYS_setresuid, uid, uid, uid) != 0) return errno;
  if (keep_net_bind_service) {
    if (int err = keep_net_bind_service_only(); err != 0) return err;
    if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return errno;
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return 0;
}

bool seccomp_supported() {
  if (::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) return false;  // no CONFIG_SECCOMP
  // Filter mode: the seccomp(2) syscall answers whether it can return errors.
  uint32_t action = SECCOMP_RET_ERRNO;
  return ::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0 &&
         seccomp_api_get() >= 1;
}

Status install_vmm_seccomp_filter() {
  if (!seccomp_supported()) {
    return Status::error(
        "cannot install the VMM's seccomp filter: this kernel does not support seccomp filters");
  }
  // Everything not allowed below fails with EPERM (not a kill: a path we did not foresee
  // then fails like a permission error, which the VMM reports, instead of killing the VM;
  // either way the call does nothing).
  FilterPtr ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
  if (!ctx) return Status::error("cannot install the VMM's seccomp filter: seccomp_init failed");
  // Other threads (console, API server) already run: the filter must cover them too.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc != 0)
    return seccomp_error("TSYNC", rc);
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 1); rc != 0)
    return seccomp_error("no_new_privs", rc);
  const uint32_t allow = SCMP_ACT_ALLOW;
  for (const char* name : kAllowed) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = seccomp_rule_add(ctx.get(), allow, nr, 0); rc != 0) return seccomp_error(name, rc);
  }
  if (int rc = seccomp_rule_add(ctx.get(), allow, SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0));
      rc != 0) {
    return seccomp_error("clone", rc);
  }
  // clone3's flags are behind a pointer: ENOSYS makes glibc fall back to clone.
  if (const int nr = seccomp_syscall_resolve_name("clone3"); nr != __NR_SCMP_ERROR) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc != 0) {
      return seccomp_error("clone3", rc);
    }
  }
  // kill only probes whether a process exists (the switch's stale endpoints); a thread
  // signals its own process with tgkill.
  if (int rc = seccomp_rule_add(ctx.get(), allow, SCMP_SYS(kill), 1, SCMP_A1(SCMP_CMP_EQ, 0));
      rc != 0) {
    return seccomp_error("kill", rc);
  }
  for (unsigned long request : kAllowedIoctls) {
    // The request is an unsigned int in the kernel: compare the low 32 bits only.
    if (int rc =
            seccomp_rule_add(ctx.get(), allow, SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, request & 0xffffffffULL));
        rc != 0) {
      return seccomp_error("ioctl", rc);
    }
  }
  for (int family : kAllowedFamilies) {
    if (int rc = seccomp_rule_add(
            ctx.get(), allow, SCMP_SYS(socket), 1,
            SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffULL, static_cast<uint64_t>(family)));
        rc != 0) {
      return seccomp_error("socket", rc);
    }
  }
  if (int rc = seccomp_rule_add(
          ctx.get(), allow, SCMP_SYS(socketpair), 1,
          SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffULL, static_cast<uint64_t>(AF_UNIX)));
      rc != 0) {
    return seccomp_error("socketpair", rc);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return Status::error(fmt::format("cannot set no_new_privs: {}", std::strerror(errno)));
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    // With TSYNC, a positive value is the id of a thread that could not be synchronised.
    if (rc > 0)
      return Status::error(
          fmt::format("cannot install the VMM's seccomp filter: thread {} refused it", rc));
    return seccomp_error("loading", rc);
  }
  return {};
}

}  // namespace nimbus::sandbox
