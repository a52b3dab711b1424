#include "host/vmm_pidfile.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace nimbus::host {
namespace {

namespace fs = std::filesystem;

class PidfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("nimbus-pidfile-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "vmm.pid").string();
  }
  void TearDown() override {
    for (pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    fs::remove_all(dir_);
  }
  // Like spawn_vmm: a child takes the lock, then execs a long sleep keeping the lock's fd.
  pid_t spawn_holder() {
    int pipefd[2];
    EXPECT_EQ(::pipe(pipefd), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(pipefd[0]);
      const int err = pidfile_lock_in_child(path_.c_str());
      (void)!::write(pipefd[1], &err, sizeof err);
      if (err != 0) _exit(3);
      ::close(pipefd[1]);
      ::execl("/bin/sleep", "sleep", "60", static_cast<char*>(nullptr));
      _exit(127);
    }
    ::close(pipefd[1]);
    int err = -1;
    EXPECT_EQ(::read(pipefd[0], &err, sizeof err), static_cast<ssize_t>(sizeof err));
    ::close(pipefd[0]);
    last_err_ = err;
    children_.push_back(pid);
    return pid;
  }
  fs::path dir_;
  std::string path_;
  std::vector<pid_t> children_;
  int last_err_ = 0;
};

TEST_F(PidfileTest, HolderIsTheExecedChildAndAStaleFileIsNobody) {
  EXPECT_FALSE(pidfile_holder(path_).has_value()) << "no file";
  const pid_t pid = spawn_holder();
  ASSERT_EQ(last_err_, 0);
  // The lock survives exec: the sleep now holds it.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(pidfile_holder(path_).has_value());
  EXPECT_EQ(*pidfile_holder(path_), pid);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  children_.clear();
  // The file is still there with the pid in it, but nobody holds the lock.
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_FALSE(pidfile_holder(path_).has_value());
}

TEST_F(PidfileTest, SecondHolderIsRefusedAndTheFirstPidSurvives) {
  const pid_t first = spawn_holder();
  ASSERT_EQ(last_err_, 0);
  spawn_holder();
  EXPECT_TRUE(last_err_ == EAGAIN || last_err_ == EACCES) << last_err_;
  ASSERT_TRUE(pidfile_holder(path_).has_value());
  EXPECT_EQ(*pidfile_holder(path_), first);
}

TEST_F(PidfileTest, ProbingNeverTakesTheLock) {
  // A probe between two starts must not make the next start fail or succeed wrongly.
  std::ofstream(path_) << "999999\n";
  EXPECT_FALSE(pidfile_holder(path_).has_value());
  const pid_t pid = spawn_holder();
  ASSERT_EQ(last_err_, 0);
  EXPECT_EQ(pidfile_holder(path_).value_or(0), pid);
}

TEST_F(PidfileTest, GarbageAndSymlinksAreNobody) {
  const pid_t pid = spawn_holder();
  ASSERT_EQ(last_err_, 0);
  // A symlink to the locked file is not followed.
  const std::string link = (dir_ / "link.pid").string();
  fs::create_symlink(path_, link);
  EXPECT_FALSE(pidfile_holder(link).has_value());
  // Locked but with garbage in it (a VMM cannot make nimbusd believe anything).
  std::ofstream(path_, std::ios::in | std::ios::out) << "12abc";
  EXPECT_FALSE(pidfile_holder(path_).has_value());
  (void)pid;
}

}  // namespace
}  // namespace nimbus::host
