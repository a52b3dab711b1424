#include "host/proc_info.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace nimbus::host {
namespace {

// A child that renames itself to `comm`, says so on a pipe, and waits to be killed.
pid_t spawn_sleeper(const char* comm) {
  int ready[2];
  if (::pipe(ready) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_NAME, comm, 0, 0, 0);
    const char c = 1;
    (void)!::write(ready[1], &c, 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c;
  (void)!::read(ready[0], &c, 1);
  ::close(ready[0]);
  return pid;
}

TEST(ProcInfo, ReadsOwnProcess) {
  auto st = read_proc_stat(::getpid());
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(st->state, 'R');
  EXPECT_GT(st->start_ticks, 0u);
  EXPECT_GT(st->rss_bytes, 0u);
  EXPECT_GE(st->cpu_seconds, 0.0);
  EXPECT_TRUE(same_process(::getpid(), st->start_ticks));
  EXPECT_FALSE(same_process(::getpid(), st->start_ticks + 1));
  auto cmd = proc_cmdline(::getpid());
  ASSERT_TRUE(cmd.ok()) << cmd.message();
  EXPECT_NE(cmd->find("nimbus_unit_tests"), std::string::npos) << *cmd;
}

TEST(ProcInfo, CommWithSpacesAndParensIsParsed) {
  const pid_t pid = spawn_sleeper("a) b (c) Z 1");
  ASSERT_GT(pid, 0);
  // The child may still be on its way into pause(): wait until it sleeps there.
  auto st = read_proc_stat(pid);
  for (int i = 0; i < 1000 && st.ok() && st->state != 'S'; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    st = read_proc_stat(pid);
  }
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(st->state, 'S');
  auto mine = read_proc_stat(::getpid());
  ASSERT_TRUE(mine.ok());
  EXPECT_GE(st->start_ticks, mine->start_ticks);
  EXPECT_TRUE(same_process(pid, st->start_ticks));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

TEST(ProcInfo, ZombieIsNotTheSameProcessAndReapedIsGone) {
  const pid_t pid = spawn_sleeper("zombie-to-be");
  ASSERT_GT(pid, 0);
  auto st = read_proc_stat(pid);
  ASSERT_TRUE(st.ok()) << st.message();
  const uint64_t start = st->start_ticks;
  ::kill(pid, SIGKILL);
  // Not reaped yet: the process stays as a zombie.
  for (int i = 0; i < 500; i++) {
    st = read_proc_stat(pid);
    if (st.ok() && st->state == 'Z') break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(st->state, 'Z');
  EXPECT_EQ(st->start_ticks, start);
  EXPECT_EQ(st->rss_bytes, 0u);
  EXPECT_FALSE(same_process(pid, start));
  auto cmd = proc_cmdline(pid);
  ASSERT_TRUE(cmd.ok()) << cmd.message();
  EXPECT_EQ(*cmd, "");

  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  auto gone = read_proc_stat(pid);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.message(), "no process " + std::to_string(pid));
  EXPECT_FALSE(same_process(pid, start));
  EXPECT_FALSE(proc_cmdline(pid).ok());
}

TEST(ProcInfo, BadPidsFail) {
  EXPECT_FALSE(read_proc_stat(0).ok());
  EXPECT_FALSE(read_proc_stat(-5).ok());
  EXPECT_FALSE(same_process(0, 0));
}

TEST(ProcInfo, PidfdBecomesReadableWhenTheProcessExits) {
  const pid_t pid = spawn_sleeper("pidfd-child");
  ASSERT_GT(pid, 0);
  const int fd = open_pidfd(pid);
  if (fd < 0) {
    EXPECT_EQ(errno, ENOSYS);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    GTEST_SKIP() << "pidfd_open is not supported by this kernel";
  }
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  ::kill(pid, SIGKILL);
  EXPECT_EQ(::poll(&p, 1, 5000), 1);
  ::close(fd);
  ::waitpid(pid, nullptr, 0);
  EXPECT_LT(open_pidfd(pid), 0);
}

}  // namespace
}  // namespace nimbus::host
