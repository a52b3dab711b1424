// A Daemon over FakeVmProcesses in a temporary state directory, for the unit tests of
// nimbusd's logic: a tiny image (a few bytes of "kernel", a 1 MiB raw disk), no sandbox,
// no monitor thread (tests call monitor_once), and a host of 2 CPUs (overcommit 1), 1024
// MiB for VMs (64 MiB overhead each) and 100 MiB of disk.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "common/log.h"
#include "host/daemon.h"
#include "host/fake_vm_processes.h"

namespace nimbus::host {

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(log::init("nimbusd-test", "off").ok());
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("nimbusd-test-{}-{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->random_seed() + counter_++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "bundled");
    std::ofstream(dir_ / "bundled" / "Image") << "not a kernel";
    std::ofstream(dir_ / "bundled" / "rootfs.ext4").close();
    std::filesystem::resize_file(dir_ / "bundled" / "rootfs.ext4", 1 << 20);
    options.state_dir = (dir_ / "state").string();
    options.bundled_images = (dir_ / "bundled").string();
    options.vmm_exe = "/bin/true";
    options.sandbox = false;
    options.monitor_interval_ms = 0;
    options.policy.cpu_overcommit = 1.0;
    options.policy.cpus_override = 2;
    options.policy.memory_mib_override = 2048;
    options.policy.reserved_memory_mib = 1024;
    options.policy.vm_overhead_mib = 64;
    options.policy.disk_mib_override = 100;
    options.policy.reserved_disk_mib = 0;
    fake = std::make_shared<FakeVmProcesses>();
    restart_daemon();
  }
  void TearDown() override {
    daemon.reset();
    std::filesystem::remove_all(dir_);
  }

  // A new nimbusd over the same state and the same (fake) processes, as after a restart.
  void restart_daemon() {
    daemon.reset();
    daemon = std::make_unique<Daemon>(options, fake);
    ASSERT_TRUE(daemon->init().ok());
  }

  VmInfo create(const std::string& name, unsigned cpus = 1, uint64_t memory_mib = 256,
                bool start = true, const std::string& policy = "no") {
    CreateRequest r;
    r.name = name;
    r.cpus = cpus;
    r.memory_mib = memory_mib;
    r.start = start;
    r.restart_policy = policy;
    auto vm = daemon->create_vm(r);
    EXPECT_TRUE(vm.ok()) << name << ": " << vm.message();
    return vm.ok() ? *vm : VmInfo{};
  }
  VmRecord get(const std::string& name) {
    auto vm = daemon->get_vm(name);
    EXPECT_TRUE(vm.ok()) << name << ": " << vm.message();
    return vm.ok() ? vm->record : VmRecord{};
  }
  Capacity capacity() { return daemon->host_info()->capacity; }

  DaemonOptions options;
  std::shared_ptr<FakeVmProcesses> fake;
  std::unique_ptr<Daemon> daemon;

 private:
  std::filesystem::path dir_;
  static inline int counter_ = 0;
};

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace nimbus::host
