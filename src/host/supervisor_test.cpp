// nimbusd's supervision through a fake of the VM processes (daemon_test_fixture.h): how a
// VMM that ended is reported, the restart policy and its budget, a starting VM becoming
// running, and recovery when nimbusd starts again over live, dead, unresponsive and stray
// VMMs.
#include <gtest/gtest.h>

#include "host/daemon_test_fixture.h"
#include "host/registry.h"
#include "host/restart_policy.h"

namespace nimbus::host {
namespace {

TEST(RestartPolicy, WhatEachPolicyRestarts) {
  VmRecord vm;
  vm.desired_state = "running";
  for (auto [policy, crash, clean] :
       {std::tuple{"no", false, false}, std::tuple{"on-failure", true, false},
        std::tuple{"always", true, true}}) {
    vm.restart_policy = policy;
    EXPECT_EQ(policy_wants_restart(vm, false), crash) << policy;
    EXPECT_EQ(policy_wants_restart(vm, true), clean) << policy;
  }
  vm.desired_state = "stopped";
  EXPECT_FALSE(policy_wants_restart(vm, false)) << "a VM asked to stop is never restarted";
}

TEST(RestartPolicy, AtMostFiveAMinute) {
  RestartBudget budget;
  for (int i = 0; i < 5; i++) EXPECT_TRUE(budget.take("web1", 1000 + i));
  EXPECT_FALSE(budget.take("web1", 1010));
  EXPECT_TRUE(budget.take("web2", 1010)) << "each VM has its own budget";
  EXPECT_TRUE(budget.take("web1", 1061)) << "the first restart is over a minute old";
  EXPECT_FALSE(budget.take("web1", 1061));
  budget.forget("web1");
  EXPECT_TRUE(budget.take("web1", 1062));
}

TEST_F(DaemonTest, ACrashedVmWithoutAPolicyStaysCrashed) {
  const VmInfo vm = create("web1");
  fake->end(static_cast<pid_t>(vm.record.pid), false);
  daemon->monitor_once();
  const VmRecord now = get("web1");
  EXPECT_EQ(now.state, "crashed");
  EXPECT_EQ(now.desired_state, "stopped");
  EXPECT_EQ(now.pid, 0);
  EXPECT_TRUE(contains(now.last_exit, "SIGSEGV")) << now.last_exit;
  EXPECT_EQ(fake->count("spawn web1"), 1u);
  EXPECT_EQ(capacity().cpus.allocated, 0u) << "a crashed VM holds no vCPUs";
}

TEST_F(DaemonTest, ACleanExitIsStoppedUnlessThePolicyIsAlways) {
  const VmInfo a = create("onfail", 1, 128, true, "on-failure");
  const VmInfo b = create("always", 1, 128, true, "always");
  fake->end(static_cast<pid_t>(a.record.pid), true);
  fake->end(static_cast<pid_t>(b.record.pid), true);
  daemon->monitor_once();
  EXPECT_EQ(get("onfail").state, "stopped");
  EXPECT_EQ(get("onfail").desired_state, "stopped");
  const VmRecord again = get("always");
  EXPECT_EQ(again.state, "starting");
  EXPECT_EQ(again.restarts, 1u);
  EXPECT_NE(again.pid, b.record.pid);
}

TEST_F(DaemonTest, OnFailureRestartsAtMostFiveTimesAMinute) {
  create("web1", 1, 256, true, "on-failure");
  for (unsigned i = 1; i <= 5; i++) {
    fake->end(static_cast<pid_t>(get("web1").pid), false);
    daemon->monitor_once();
    const VmRecord vm = get("web1");
    ASSERT_EQ(vm.state, "starting") << "crash " << i;
    EXPECT_EQ(vm.restarts, i);
    EXPECT_EQ(fake->live_of("web1").size(), 1u);
  }
  fake->end(static_cast<pid_t>(get("web1").pid), false);
  daemon->monitor_once();
  const VmRecord vm = get("web1");
  EXPECT_EQ(vm.state, "crashed");
  EXPECT_EQ(vm.desired_state, "stopped");
  EXPECT_EQ(vm.restarts, 5u);
  EXPECT_TRUE(contains(vm.last_exit, "5 restarts in the last minute")) << vm.last_exit;
  EXPECT_EQ(fake->count("spawn web1"), 6u);
}

TEST_F(DaemonTest, AStartingVmRunsWhenItsAgentIsReady) {
  const VmInfo vm = create("web1");
  daemon->monitor_once();
  EXPECT_EQ(get("web1").state, "starting");
  EXPECT_FALSE(daemon->get_vm("web1")->ready);
  fake->proc(static_cast<pid_t>(vm.record.pid)).agent_ready = true;
  daemon->monitor_once();
  EXPECT_EQ(get("web1").state, "running");
  EXPECT_TRUE(daemon->get_vm("web1")->ready);
  // Without the agent's word, after ready_timeout_s of uptime.
  const VmInfo quiet = create("quiet");
  fake->proc(static_cast<pid_t>(quiet.record.pid)).uptime_s = options.ready_timeout_s + 1;
  daemon->monitor_once();
  EXPECT_EQ(get("quiet").state, "running");
  EXPECT_FALSE(daemon->get_vm("quiet")->ready);
}

TEST_F(DaemonTest, RecoveryAdoptsAVmmThatAnswers) {
  const VmInfo vm = create("web1");
  ASSERT_TRUE(daemon->pause_vm("web1").ok());
  restart_daemon();
  const VmRecord now = get("web1");
  EXPECT_EQ(now.pid, vm.record.pid);
  EXPECT_EQ(now.state, "paused");
  EXPECT_EQ(fake->count("spawn web1"), 1u);
  EXPECT_EQ(fake->count(fmt::format("kill {}", vm.record.pid)), 0u);
  EXPECT_EQ(capacity().cpus.allocated, 1u);
}

TEST_F(DaemonTest, RecoveryKillsAVmmThatDoesNotAnswerAndAppliesThePolicy) {
  const VmInfo quiet = create("quiet", 1, 128, true, "no");
  const VmInfo again = create("again", 1, 128, true, "on-failure");
  // Old enough that recovery does not give them the time a just-started VMM gets.
  for (const VmInfo* v : {&quiet, &again}) {
    fake->proc(static_cast<pid_t>(v->record.pid)).answers = false;
    fake->proc(static_cast<pid_t>(v->record.pid)).age_s = options.vmm_answer_timeout_s + 1;
  }
  restart_daemon();
  EXPECT_EQ(fake->count(fmt::format("kill {}", quiet.record.pid)), 1u);
  const VmRecord q = get("quiet");
  EXPECT_EQ(q.state, "crashed");
  EXPECT_EQ(q.desired_state, "stopped");
  EXPECT_EQ(q.pid, 0);
  EXPECT_TRUE(contains(q.last_exit, "not answering")) << q.last_exit;
  const VmRecord a = get("again");
  EXPECT_EQ(a.state, "starting") << "on-failure: started again once the stray is gone";
  EXPECT_NE(a.pid, again.record.pid);
  EXPECT_EQ(fake->live_of("again").size(), 1u);
}

TEST_F(DaemonTest, RecoveryKillsSeveralVmmsOfOneVm) {
  const VmInfo vm = create("web1");
  const pid_t stray = fake->add("web1");
  restart_daemon();
  EXPECT_TRUE(fake->live_of("web1").empty());
  EXPECT_EQ(fake->count(fmt::format("kill {}", stray)), 1u);
  EXPECT_EQ(fake->count(fmt::format("kill {}", vm.record.pid)), 1u);
  const VmRecord now = get("web1");
  EXPECT_EQ(now.pid, 0);
  EXPECT_TRUE(contains(now.last_exit, "found 2 VMM processes")) << now.last_exit;
  // Nothing holds its vCPUs now, and it can start again.
  EXPECT_EQ(capacity().cpus.allocated, 0u);
  EXPECT_TRUE(daemon->start_vm("web1").ok());
}

TEST_F(DaemonTest, AVmmThatEndedWhileNimbusdWasDownIsReportedByTheMonitor) {
  const VmInfo vm = create("web1", 1, 256, true, "on-failure");
  fake->end(static_cast<pid_t>(vm.record.pid), false);
  restart_daemon();
  EXPECT_EQ(get("web1").pid, vm.record.pid) << "recovery leaves a recorded pid to the monitor";
  daemon->monitor_once();
  const VmRecord now = get("web1");
  EXPECT_EQ(now.state, "starting");
  EXPECT_EQ(now.restarts, 1u);
  EXPECT_TRUE(contains(now.last_exit, "SIGSEGV")) << now.last_exit;
}

TEST_F(DaemonTest, RecoveryEmptiesOrphanCgroupsAndFinishesInterruptedCreations) {
  const pid_t orphan = fake->add("deleted-vm");
  // A creation caught before its VMM ran: the row says "creating", the disk may be half
  // written.
  {
    auto reg = Registry::open(options.state_dir + "/nimbus.db");
    ASSERT_TRUE(reg.ok()) << reg.message();
    VmRecord vm;
    vm.name = "half";
    vm.image = "default";
    vm.disk_mib = 1;
    vm.slot = 9;
    vm.state = "creating";
    vm.desired_state = "running";
    ASSERT_TRUE((*reg)->insert_vm(vm).ok());
  }
  std::filesystem::create_directories(options.state_dir + "/vms/half");
  std::ofstream(options.state_dir + "/vms/half/disk.qcow2") << "half written";
  restart_daemon();
  EXPECT_EQ(fake->count(fmt::format("kill {}", orphan)), 1u);
  {
    std::lock_guard<std::mutex> lock(fake->mu);
    EXPECT_EQ(fake->cgroups.count("deleted-vm"), 0u);
  }
  const VmRecord half = get("half");
  EXPECT_EQ(half.state, "stopped");
  EXPECT_EQ(half.desired_state, "stopped");
  EXPECT_GT(std::filesystem::file_size(options.state_dir + "/vms/half/disk.qcow2"), 12u)
      << "a fresh overlay";
  EXPECT_TRUE(daemon->start_vm("half").ok());
}

}  // namespace
}  // namespace nimbus::host
