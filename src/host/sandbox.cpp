#include "host/sandbox.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace nimbus::host {

namespace {

// Syscalls a VMM never makes (see sandbox.h).
constexpr const char* kDenied[] = {
    "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "chroot", "swapon", "swapoff", "reboot",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "unshare", "setns",
    "userfaultfd", "iopl", "ioperm", "personality", "acct", "settimeofday",
    "clock_settime", "adjtimex", "setuid", "setgid", "setreuid", "setregid", "setresuid",
    "setresgid", "setgroups", "setfsuid", "setfsgid", "mknod", "mknodat",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "quotactl", "vhangup",
    "syslog",
};

struct ReleaseFilter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using FilterPtr = std::unique_ptr<void, ReleaseFilter>;

Status seccomp_error(const std::string& what, int rc) {
  // libseccomp returns -errno.
  return Status::error(fmt::format("cannot install the VMM's seccomp filter: {}: {}", what, std::strerror(-rc)));
}

}  // namespace

int drop_privileges_in_child(uid_t uid, gid_t gid) noexcept {
  // Raw syscalls: no locks, no allocation, no signals to (non-existent) other threads.
  if (::syscall(SYS_setgroups, 0, nullptr) != 0) return errno;
  if (::syscall(SYS_setresgid, gid, gid, gid) != 0) return errno;
  if (::syscall(SYS_setresuid, uid, uid, uid) != 0) return errno;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return 0;
}

bool seccomp_supported() {
  if (::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) return false;  // no CONFIG_SECCOMP
  // Filter mode: the seccomp(2) syscall answers whether it can return errors.
  uint32_t action = SECCOMP_RET_ERRNO;
  return ::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0 && seccomp_api_get() >= 1;
}

Status install_vmm_seccomp_filter() {
  if (!seccomp_supported()) {
    return Status::error("cannot install the VMM's seccomp filter: this kernel does not support seccomp filters");
  }
  FilterPtr ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return Status::error("cannot install the VMM's seccomp filter: seccomp_init failed");
  // Other threads (console, API server) already run: the filter must cover them too.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc != 0) return seccomp_error("TSYNC", rc);
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 1); rc != 0) return seccomp_error("no_new_privs", rc);
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kDenied) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = seccomp_rule_add(ctx.get(), deny, nr, 0); rc != 0) return seccomp_error(name, rc);
  }
  // New user namespaces through clone; plain threads and forks pass.
  if (int rc = seccomp_rule_add(ctx.get(), deny, SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
      rc != 0) {
    return seccomp_error("clone", rc);
  }
  if (const int nr = seccomp_syscall_resolve_name("clone3"); nr != __NR_SCMP_ERROR) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc != 0) {
      return seccomp_error("clone3", rc);
    }
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return Status::error(fmt::format("cannot set no_new_privs: {}", std::strerror(errno)));
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    // With TSYNC, a positive value is the id of a thread that could not be synchronised.
    if (rc > 0) return Status::error(fmt::format("cannot install the VMM's seccomp filter: thread {} refused it", rc));
    return seccomp_error("loading", rc);
  }
  return {};
}

}  // namespace nimbus::host
