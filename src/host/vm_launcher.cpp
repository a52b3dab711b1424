#include "host/vm_launcher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "host/cgroup.h"
#include "host/vmm_pidfile.h"
#include "sandbox/sandbox.h"

namespace nimbus::host {

VmPaths VmPaths::of(const std::string& state_dir, const std::string& vm) {
  VmPaths p;
  p.dir = state_dir + "/vms/" + vm;
  p.disk = p.dir + "/disk.qcow2";
  p.config = p.dir + "/config.json";
  p.api_sock = p.dir + "/api.sock";
  p.console_sock = p.dir + "/console.sock";
  p.console_log = p.dir + "/console.log";
  p.vmm_log = p.dir + "/vmm.log";
  p.exit_file = p.dir + "/exit";
  p.snapshots = p.dir + "/snapshots";
  p.pid_file = p.dir + "/vmm.pid";
  return p;
}

std::string host_network_address(unsigned slot) {
  return fmt::format("10.88.{}.{}", slot >> 8, slot & 0xff);
}

std::string vm_mac(unsigned slot, unsigned nic) {
  return fmt::format("52:54:00:{:02x}:{:02x}:{:02x}", 0x80 | (nic & 0x7f), (slot >> 8) & 0xff,
                     slot & 0xff);
}

std::string vm_user_mac(const VmRecord& vm) {
  return !vm.mac_user.empty() ? vm.mac_user : vm_mac(vm.slot, 0);
}

std::string vm_host_mac(const VmRecord& vm) {
  if (!vm.mac_host.empty()) return vm.mac_host;
  return vm.network ? network_mac(*vm.network) : vm_mac(vm.slot, 1);
}

config::VmConfig make_vmm_config(const VmRecord& vm, const ImageInfo& image, const VmPaths& paths,
                                 const std::string& switch_path) {
  config::VmConfig c;
  c.vcpus = vm.cpus;
  c.mem_mib = vm.memory_mib;
  c.kernel = image.kernel;
  c.initrd = image.initrd;
  // eth1 is configured by the kernel (ip=CLIENT:SERVER:GW:NETMASK:HOSTNAME:DEVICE:AUTOCONF),
  // eth0 by the guest's init (DHCP from slirp).
  // On a private network the gateway stays out of ip=: a default route via eth1 would take
  // the one of eth0 (DHCP: the internet, the metadata service) away.
  std::string ip;
  if (vm.network) {
    ip = network_ip_arg(*vm.network, vm.name);
  } else {
    ip = fmt::format("ip={}::0.0.0.0:255.255.0.0:{}:eth1:off", host_network_address(vm.slot),
                     vm.name);
  }
  c.boot_args =
      fmt::format("console=ttyS0 earlycon=sbi root=/dev/vda rw nimbus.hostname={} {}", vm.name, ip);
  // The guest's /init runs nimbus-firstboot (host name, SSH key, dropbear, user data).
  if (vm.metadata) c.boot_args += " nimbus.metadata=1";
  config::DiskSpec d;
  d.id = "rootfs";
  d.path = paths.disk;
  d.root = true;
  d.format = "qcow2";
  c.drives.push_back(d);
  config::NicSpec user;
  user.id = kUserNic;
  user.mode = "user";
  user.mac = vm_user_mac(vm);
  user.forwards = vm.forwards;  // the same type: no guest address, so the DHCP one
  c.nics.push_back(user);
  config::NicSpec host;
  host.id = "eth1";
  host.mode = "switch";
  host.switch_path = switch_path;
  host.mac = vm_host_mac(vm);
  if (vm.network) host.mtu = vm.network->mtu;  // told to the guest by virtio-net
  c.nics.push_back(host);
  c.entropy = true;
  c.metadata = vm.metadata;  // served on eth0 at 169.254.169.254
  return c;
}

namespace {

void child_fail(int log_fd, const char* what, int err) {
  // Only async-signal-safe calls here: the message is "...: WHAT: errno N".
  char num[16];
  int n = 0;
  char rev[16];
  unsigned v = static_cast<unsigned>(err);
  do {
    rev[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < 15);
  for (int i = 0; i < n; i++) num[i] = rev[n - 1 - i];
  const char prefix[] = "nimbusd: cannot start the VMM: ";
  (void)!write(log_fd, prefix, sizeof prefix - 1);
  (void)!write(log_fd, what, strlen(what));
  (void)!write(log_fd, ": errno ", 8);
  (void)!write(log_fd, num, static_cast<size_t>(n));
  (void)!write(log_fd, "\n", 1);
  _exit(127);
}

}  // namespace

Result<pid_t> spawn_vmm(const SpawnSpec& spec) {
  // Everything the child needs, prepared before fork.
  std::vector<std::string> argv_s;
  argv_s.push_back(spec.exe);
  argv_s.insert(argv_s.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  const int log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0)
    return Status::error(fmt::format("cannot open '{}': {}", spec.log_path, std::strerror(errno)));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<std::string> procs = spec.cgroup_procs;
  const std::string cwd = spec.cwd.empty() ? std::string("/") : spec.cwd;
  const std::string pid_file = spec.pid_file;

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return Status::error(fmt::format("fork: {}", std::strerror(err)));
  }
  if (pid == 0) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (setsid() < 0) child_fail(log_fd, "setsid", errno);
    if (dup2(null_fd >= 0 ? null_fd : log_fd, 0) < 0 || dup2(log_fd, 1) < 0 ||
        dup2(log_fd, 2) < 0) {
      child_fail(log_fd, "redirecting output", errno);
    }
    for (const std::string& f : procs) {
      const int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0", 1) != 1) child_fail(2, f.c_str(), errno);
      ::close(fd);
    }
    // Nothing of nimbusd's (client connections, the API listener, the database) may live on
    // in the VMM, whatever flags the descriptors were opened with: every descriptor above
    // stderr closes at exec. (The pidfile's, opened next, stays open on purpose.)
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < 4096; fd++) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    // Before anything can go wrong for the VMM: from here on nimbusd (or its successor)
    // can find this process by the pidfile's lock even if it never learns the pid.
    if (!pid_file.empty()) {
      if (int err = pidfile_lock_in_child(pid_file.c_str()); err != 0) {
        child_fail(2,
                   err == EAGAIN || err == EACCES
                       ? "the VM already has a live VMM (vmm.pid is locked)"
                       : "vmm.pid",
                   err);
      }
    }
    // Sockets and files the VMM creates are shared with its group (the host switch).
    umask(007);
    if (spec.drop_privileges) {
      // Ports below 1024 stay possible for the forwards (CAP_NET_BIND_SERVICE, nothing else).
      if (int err = sandbox::drop_privileges_in_child(spec.uid, spec.gid, true); err != 0)
        child_fail(2, "dropping privileges", err);
    } else {
      prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    if (chdir(cwd.c_str()) != 0) child_fail(2, "chdir", errno);
    execv(argv[0], argv.data());
    child_fail(2, argv[0], errno);
  }
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  return pid;
}

std::string last_log_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = size > 4096 ? size - 4096 : 0;
  in.seekg(start);
  std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' '))
    tail.pop_back();
  const size_t nl = tail.rfind('\n');
  std::string line = nl == std::string::npos ? tail : tail.substr(nl + 1);
  if (line.size() > 400) {
    line.resize(400);
    line += "...";
  }
  return line;
}

}  // namespace nimbus::host
