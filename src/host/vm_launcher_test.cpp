#include "host/vm_launcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "host/vmm_pidfile.h"

namespace nimbus::host {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class SpawnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("nimbus-spawn-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    for (pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    fs::remove_all(dir_);
  }
  // A stand-in VMM: a shell that lists its descriptors, then sleeps.
  SpawnSpec spec(const std::string& script) {
    SpawnSpec s;
    s.exe = "/bin/sh";
    s.args = {"-c", script};
    s.log_path = dir_ + "/vmm.log";
    s.cwd = dir_;
    s.pid_file = dir_ + "/vmm.pid";
    return s;
  }
  int wait_exit(pid_t pid) {
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string dir_;
  std::vector<pid_t> pids_;
};

TEST_F(SpawnTest, TheVmmHoldsItsPidfileAndNothingElseOfNimbusd) {
  // A descriptor nimbusd forgot to mark close-on-exec (an accepted API connection, say).
  const int leaky = ::open((dir_ + "/secret").c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(leaky, 3);
  auto pid = spawn_vmm(spec("ls -l /proc/$$/fd > fds; touch listed; exec sleep 60"));
  ::close(leaky);
  ASSERT_TRUE(pid.ok()) << pid.message();
  pids_.push_back(*pid);
  for (int i = 0; i < 400 && !fs::exists(dir_ + "/listed"); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::string fds = slurp(dir_ + "/fds");
  EXPECT_EQ(fds.find("secret"), std::string::npos) << fds;
  EXPECT_NE(fds.find("vmm.pid"), std::string::npos) << fds;
  EXPECT_EQ(pidfile_holder(dir_ + "/vmm.pid").value_or(0), *pid);
}

TEST_F(SpawnTest, ASecondVmmForTheSameVmDoesNotStart) {
  auto first = spawn_vmm(spec("exec sleep 60"));
  ASSERT_TRUE(first.ok()) << first.message();
  pids_.push_back(*first);
  for (int i = 0; i < 400 && !pidfile_holder(dir_ + "/vmm.pid"); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto second = spawn_vmm(spec("touch second-ran; exec sleep 60"));
  ASSERT_TRUE(second.ok()) << second.message();
  pids_.push_back(*second);
  EXPECT_EQ(wait_exit(*second), 127);
  EXPECT_FALSE(fs::exists(dir_ + "/second-ran"));
  EXPECT_NE(slurp(dir_ + "/vmm.log").find("already has a live VMM"), std::string::npos)
      << slurp(dir_ + "/vmm.log");
  EXPECT_EQ(pidfile_holder(dir_ + "/vmm.pid").value_or(0), *first)
      << "the first VMM's pid survives";
}

// The guest's /init runs its first-boot agent (nimbus-firstboot) only when the VM has
// metadata: the boot argument follows the VM's metadata section.
TEST(MakeVmmConfig, NimbusMetadataBootArgOnlyWithMetadata) {
  VmRecord vm;
  vm.name = "web";
  vm.slot = 7;
  ImageInfo image;
  image.kernel = "/images/Image";
  const VmPaths paths = VmPaths::of("/state", "web");
  config::VmConfig plain = make_vmm_config(vm, image, paths, "/state/switch.sock");
  EXPECT_EQ(plain.boot_args.find("nimbus.metadata"), std::string::npos) << plain.boot_args;
  EXPECT_FALSE(plain.metadata);

  vm.metadata = config::MetadataConfig{};
  vm.metadata->data = {{"meta-data", {{"instance-id", "i-0abc"}}}};
  config::VmConfig with = make_vmm_config(vm, image, paths, "/state/switch.sock");
  EXPECT_NE(with.boot_args.find(" nimbus.metadata=1"), std::string::npos) << with.boot_args;
  EXPECT_NE(with.boot_args.find("root=/dev/vda rw nimbus.hostname=web"), std::string::npos)
      << with.boot_args;
  ASSERT_TRUE(with.metadata);
  EXPECT_EQ(with.metadata->data, vm.metadata->data);
}

}  // namespace
}  // namespace nimbus::host

namespace nimbus::host {
namespace {

// eth1 on a private network: its switch, a MAC from its address, ip= with its address and
// netmask and no gateway (eth0 keeps the default route).
TEST(MakeVmmConfig, PrivateNetworkOnEth1) {
  VmRecord vm;
  vm.name = "a";
  vm.slot = 7;
  ImageInfo image;
  image.kernel = "/images/Image";
  const VmPaths paths = VmPaths::of("/state", "a");
  config::VmConfig host = make_vmm_config(vm, image, paths, "/state/net/hostnet");
  EXPECT_NE(host.boot_args.find(" ip=10.88.0.7::0.0.0.0:255.255.0.0:a:eth1:off"), std::string::npos)
      << host.boot_args;
  EXPECT_EQ(host.nics[1].mac, "52:54:00:81:00:07");
  vm.network = VmNetwork{100, "172.31.16.5/20", "172.31.16.1", 1450};
  config::VmConfig priv = make_vmm_config(vm, image, paths, "/state/net/vni-100");
  EXPECT_NE(priv.boot_args.find(" ip=172.31.16.5::0.0.0.0:255.255.240.0:a:eth1:off"),
            std::string::npos)
      << priv.boot_args;
  EXPECT_EQ(priv.boot_args.find("10.88."), std::string::npos) << priv.boot_args;
  ASSERT_EQ(priv.nics.size(), 2u);
  EXPECT_EQ(priv.nics[1].switch_path, "/state/net/vni-100");
  EXPECT_EQ(priv.nics[1].mac, "52:54:ac:1f:10:05");
  EXPECT_EQ(priv.nics[1].mtu, 1450u);
  EXPECT_EQ(host.nics[1].mtu, 0u);
  EXPECT_EQ(vm_host_mac(vm), "52:54:ac:1f:10:05");
}

}  // namespace
}  // namespace nimbus::host
