#include "sandbox/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "backends/net/switch_backend.h"

namespace nimbus::sandbox {
namespace {

// Runs `body` in a forked child and returns its exit status (the body returns 0 for
// success or the number of the check that failed), or -1 if the child died otherwise.
int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) ::_exit(body());
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs a shell that exits 77: if it is not denied, the child's status says so.
int exec_exit_77() {
  char* const argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                        const_cast<char*>("exit 77"), nullptr};
  char* const envp[] = {nullptr};
  return ::execve("/bin/sh", argv, envp);
}

// The check number `n` unless `cond` holds.
#define CHILD_CHECK(n, cond) \
  do {                       \
    if (!(cond)) return n;   \
  } while (0)

TEST(Sandbox, FilterDeniesWhatAVmmNeverNeeds) {
  if (!seccomp_supported()) GTEST_SKIP() << "no seccomp filter support";
  const int status = in_child([] {
    if (!install_vmm_seccomp_filter().ok()) return 1;
    CHILD_CHECK(2, ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2);
    CHILD_CHECK(3, ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
    CHILD_CHECK(4, exec_exit_77() == -1 && errno == EPERM);
    CHILD_CHECK(5, ::unshare(CLONE_NEWUSER) == -1 && errno == EPERM);
    CHILD_CHECK(6, ::unshare(CLONE_NEWNS) == -1 && errno == EPERM);
    // clone with CLONE_NEWUSER directly (fork-like: no new stack).
    const long r = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) ::_exit(0);
    CHILD_CHECK(7, r == -1 && errno == EPERM);
    CHILD_CHECK(8, ::syscall(SYS_setuid, 0) == -1 && errno == EPERM);
    CHILD_CHECK(9, ::syscall(SYS_ptrace, 0, 0, 0, 0) == -1 && errno == EPERM);
    CHILD_CHECK(
        10, ::syscall(SYS_mount, "none", "/nonexistent-nimbus-test", "tmpfs", 0, nullptr) == -1 &&
                errno == EPERM);
    return 0;
  });
  EXPECT_EQ(status, 0) << "child check " << status << " failed";
}

TEST(Sandbox, FilterAllowsThreadsFilesMemoryAndForks) {
  if (!seccomp_supported()) GTEST_SKIP() << "no seccomp filter support";
  const int status = in_child([] {
    if (!install_vmm_seccomp_filter().ok()) return 1;
    std::atomic<int> ran{0};
    std::thread t([&ran] { ran = 42; });
    t.join();
    CHILD_CHECK(2, ran == 42);
    const int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    CHILD_CHECK(3, fd >= 0);
    char buf[64];
    CHILD_CHECK(4, ::read(fd, buf, sizeof(buf)) > 0);
    ::close(fd);
    void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHILD_CHECK(5, p != MAP_FAILED);
    static_cast<char*>(p)[4096] = 1;
    CHILD_CHECK(6, ::munmap(p, 1 << 20) == 0);
    const pid_t child = ::fork();
    if (child == 0) ::_exit(7);
    int st = 0;
    CHILD_CHECK(7, child > 0 && ::waitpid(child, &st, 0) == child && WEXITSTATUS(st) == 7);
    return 0;
  });
  EXPECT_EQ(status, 0) << "child check " << status << " failed";
}

TEST(Sandbox, FilterCoversThreadsStartedBefore) {
  if (!seccomp_supported()) GTEST_SKIP() << "no seccomp filter support";
  const int status = in_child([] {
    std::atomic<int> phase{0};
    int exec_errno = 0;
    std::thread t([&] {
      while (phase.load() == 0) std::this_thread::yield();
      exec_exit_77();  // would replace the whole process
      exec_errno = errno;
    });
    if (!install_vmm_seccomp_filter().ok()) return 1;
    phase = 1;
    t.join();
    CHILD_CHECK(2, exec_errno == EPERM);
    return 0;
  });
  EXPECT_EQ(status, 0) << "child check " << status << " failed";
}

// EPERM from a syscall made with `args` (and nothing done).
#define CHILD_DENIED(n, call) CHILD_CHECK(n, (call) == -1 && errno == EPERM)

TEST(Sandbox, FilterAllowsOnlyWhatAVmmNeeds) {
  if (!seccomp_supported()) GTEST_SKIP() << "no seccomp filter support";
  char tmpl[] = "/tmp/nimbus-sandbox-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string file = dir + "/file";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_EQ(::mkdir((dir + "/sub").c_str(), 0700), 0);
  const int status = in_child([&] {
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0 || !install_vmm_seccomp_filter().ok()) return 1;
    // Names that would plant or alias files: links, symlinks, modes, owners, rmdir.
    CHILD_DENIED(2, ::link(file.c_str(), (dir + "/hard").c_str()));
    CHILD_DENIED(3, ::symlink(file.c_str(), (dir + "/soft").c_str()));
    CHILD_DENIED(
        4, ::syscall(SYS_linkat, AT_FDCWD, file.c_str(), AT_FDCWD, (dir + "/hard2").c_str(), 0));
    CHILD_DENIED(5, ::chmod(file.c_str(), 0666));
    CHILD_DENIED(6, ::chown(file.c_str(), 0, 0));
    CHILD_DENIED(7, ::rmdir((dir + "/sub").c_str()));
    // Signals to anyone (kill only probes), terminal injection, other socket families.
    CHILD_DENIED(8, ::kill(::getpid(), SIGCONT));
    CHILD_CHECK(9, ::kill(::getpid(), 0) == 0);
    CHILD_DENIED(10, ::ioctl(null_fd, TIOCSTI, "x"));
    CHILD_DENIED(11, ::socket(AF_NETLINK, SOCK_RAW, 0));
    CHILD_DENIED(12, ::socket(AF_PACKET, SOCK_DGRAM, 0));
    // The kernel's bigger surfaces (io_uring would bypass the filter for what it does).
    CHILD_DENIED(13, ::syscall(SYS_io_uring_setup, 1, nullptr));
    CHILD_DENIED(14, ::syscall(SYS_bpf, 0, nullptr, 0));
    CHILD_DENIED(15, ::syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    CHILD_DENIED(16, ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0));
    CHILD_DENIED(17, ::syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
    // Anything not on the list, e.g. chdir.
    CHILD_DENIED(18, ::chdir("/"));
    // Nothing above happened.
    struct stat st {};
    CHILD_CHECK(19, ::lstat((dir + "/hard").c_str(), &st) == -1 &&
                        ::lstat((dir + "/soft").c_str(), &st) == -1);
    CHILD_CHECK(20, ::stat(file.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600);
    // What a VMM does with files stays allowed: snapshots go to P.tmp and are renamed.
    const int tmp = ::open((dir + "/snap.tmp").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHILD_CHECK(
        21, tmp >= 0 && ::write(tmp, "x", 1) == 1 && ::fdatasync(tmp) == 0 && ::close(tmp) == 0);
    CHILD_CHECK(22, ::rename((dir + "/snap.tmp").c_str(), (dir + "/snap").c_str()) == 0);
    CHILD_CHECK(23, ::unlink((dir + "/snap").c_str()) == 0);
    CHILD_CHECK(24, ::mkdir((dir + "/made").c_str(), 0700) == 0);
    const int unix_sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int inet_sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHILD_CHECK(25, unix_sock >= 0 && inet_sock >= 0);
    int avail = -1;
    CHILD_CHECK(26, ::ioctl(inet_sock, FIONREAD, &avail) == 0 && avail == 0);
    return 0;
  });
  std::filesystem::remove_all(dir);
  EXPECT_EQ(status, 0) << "child check " << status << " failed";
}

TEST(Sandbox, SwitchWorksUnderTheFilter) {
  if (!seccomp_supported()) GTEST_SKIP() << "no seccomp filter support";
  char tmpl[] = "/tmp/nimbus-sandbox-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const int status = in_child([&] {
    if (!install_vmm_seccomp_filter().ok()) return 1;
    // Joining creates the switch and port directories, binds, lists, sends, receives.
    auto a = backends::SwitchBackend::create(dir + "/sw");
    auto b = backends::SwitchBackend::create(dir + "/sw");
    CHILD_CHECK(2, a.ok() && b.ok());
    std::mutex mu;
    std::condition_variable cv;
    std::vector<uint8_t> got;
    CHILD_CHECK(3, (*a)->start([](const uint8_t*, size_t) { return true; }).ok());
    CHILD_CHECK(4, (*b)->start([&](const uint8_t* f, size_t n) {
                         std::lock_guard lock(mu);
                         got.assign(f, f + n);
                         cv.notify_all();
                         return true;
                       })
                       .ok());
    std::vector<uint8_t> frame(60, 7);
    std::fill(frame.begin(), frame.begin() + 6, 0xff);
    (*a)->send(frame.data(), frame.size());
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(2), [&] { return !got.empty(); });
    CHILD_CHECK(5, got == frame);
    lock.unlock();
    (*a)->stop();
    (*b)->stop();
    return 0;
  });
  std::filesystem::remove_all(dir);
  EXPECT_EQ(status, 0) << "child check " << status << " failed";
}

TEST(Sandbox, DropPrivilegesInChild) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  char path[] = "/tmp/nimbus-sandbox-test-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fchmod(fd, 0600), 0);
  ::close(fd);
  constexpr uid_t kUid = 65534;
  constexpr gid_t kGid = 65534;
  const std::string file = path;
  const int status = in_child([&file] {
    if (drop_privileges_in_child(kUid, kGid) != 0) return 1;
    CHILD_CHECK(2, ::getuid() == kUid && ::geteuid() == kUid);
    uid_t r, e, s;
    CHILD_CHECK(3, ::getresuid(&r, &e, &s) == 0 && s == kUid);
    CHILD_CHECK(4, ::getgid() == kGid && ::getegid() == kGid);
    CHILD_CHECK(5, ::getgroups(0, nullptr) == 0);
    CHILD_CHECK(6, ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
    CHILD_CHECK(7, ::open(file.c_str(), O_WRONLY | O_CLOEXEC) == -1 && errno == EACCES);
    // No way back.
    CHILD_CHECK(8, drop_privileges_in_child(0, 0) == EPERM);
    CHILD_CHECK(9, ::getuid() == kUid);
    return 0;
  });
  ::unlink(path);
  EXPECT_EQ(status, 0) << "child check " << status << " failed";
}

// The capability sets of /proc/self/status ("CapEff" -> its hex value), from `text`.
std::map<std::string, std::string> cap_sets(const std::string& text) {
  std::map<std::string, std::string> out;
  size_t at = 0;
  while ((at = text.find("Cap", at)) != std::string::npos) {
    const size_t colon = text.find(':', at);
    const size_t end = text.find('\n', at);
    if (colon == std::string::npos || end == std::string::npos) break;
    const size_t value = text.find_first_not_of(" \t", colon + 1);
    out[text.substr(at, colon - at)] = text.substr(value, end - value);
    at = end;
  }
  return out;
}

// A port below 1024 on 127.0.0.1 that nobody listens on (checked as root).
int free_low_port() {
  for (int port = 1023; port >= 600; port--) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(0x7f000001);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return port;
  }
  return -1;
}

TEST(Sandbox, DropPrivilegesCanKeepOnlyNetBindService) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const int port = free_low_port();
  ASSERT_GT(port, 0);
  char path[] = "/tmp/nimbus-sandbox-test-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string file = path;
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  constexpr uid_t kUid = 65534;
  const int status = in_child([&] {
    ::close(out[0]);
    if (drop_privileges_in_child(kUid, kUid, true) != 0) return 1;
    CHILD_CHECK(2, ::getuid() == kUid && ::geteuid() == kUid);
    CHILD_CHECK(3, ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
    // A port below 1024 on a loopback address: allowed.
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(0x7f000001);
    CHILD_CHECK(4, ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    CHILD_CHECK(5, ::listen(s, 1) == 0);
    ::close(s);
    // Nothing else a capability would allow.
    CHILD_CHECK(6, ::chown(file.c_str(), kUid, kUid) == -1 && errno == EPERM);
    CHILD_CHECK(7, ::socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) == -1);
    CHILD_CHECK(8, ::syscall(SYS_setresuid, 0, 0, 0) == -1);
    CHILD_CHECK(9, ::kill(1, 0) == -1 && errno == EPERM);
    // And over exec: what the VMM starts with.
    ::dup2(out[1], 1);
    char* const argv[] = {const_cast<char*>("/bin/cat"), const_cast<char*>("/proc/self/status"),
                          nullptr};
    ::execv("/bin/cat", argv);
    return 10;
  });
  ::close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, n);
  ::close(out[0]);
  ::unlink(path);
  ASSERT_EQ(status, 0) << "child check " << status << " failed";
  const std::map<std::string, std::string> caps = cap_sets(text);
  const std::string only = "0000000000000400";  // 1 << CAP_NET_BIND_SERVICE (10)
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    ASSERT_EQ(caps.count(set), 1u) << set << " missing in:\n" << text;
    EXPECT_EQ(caps.at(set), only) << set;
  }
}

TEST(Sandbox, WithoutTheFlagNoCapabilityIsLeft) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  const int port = free_low_port();
  ASSERT_GT(port, 0);
  const int status = in_child([&] {
    if (drop_privileges_in_child(65534, 65534) != 0) return 1;
    std::ifstream in("/proc/self/status");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHILD_CHECK(2, cap_sets(text)["CapEff"] == "0000000000000000");
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(0x7f000001);
    CHILD_CHECK(3, ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == -1 && errno == EACCES);
    return 0;
  });
  EXPECT_EQ(status, 0) << "child check " << status << " failed";
}

TEST(Sandbox, SupportIsReported) {
  // Linux has had seccomp filters since 3.5; a build host without them is unusual.
  EXPECT_TRUE(seccomp_supported());
}

}  // namespace
}  // namespace nimbus::sandbox
