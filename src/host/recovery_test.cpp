#include "host/recovery.h"

#include <gtest/gtest.h>

namespace nimbus::host {
namespace {

VmRecord vm(const std::string& state, const std::string& desired, int64_t pid = 0,
            const std::string& policy = "no") {
  VmRecord v;
  v.name = "web1";
  v.state = state;
  v.desired_state = desired;
  v.pid = pid;
  v.pid_start = pid != 0 ? 777 : 0;
  v.restart_policy = policy;
  return v;
}

VmmFindings one(pid_t pid, bool answers, const std::string& state = "Running", bool ready = true) {
  VmmFindings f;
  f.live = {pid};
  f.answers = answers;
  f.vmm_state = answers ? state : "";
  f.ready = answers && ready;
  f.start_ticks = 4242;
  return f;
}

// The crash of issue 23: nimbusd died between fork and recording the pid.
TEST(Recovery, CreatingWithAnAnsweringVmmIsAdopted) {
  const RecoveryPlan p =
      plan_recovery(vm("creating", "running"), one(1234, true, "Running", false));
  EXPECT_TRUE(p.adopt);
  EXPECT_FALSE(p.kill);
  EXPECT_FALSE(p.remove);
  EXPECT_TRUE(p.save);
  EXPECT_EQ(p.next.pid, 1234);
  EXPECT_EQ(p.next.pid_start, 4242u);
  EXPECT_EQ(p.next.state, "starting");
  EXPECT_EQ(p.next.desired_state, "running");
}

TEST(Recovery, RecordedVmmThatAnswersKeepsItsStateFromTheVmm) {
  RecoveryPlan p = plan_recovery(vm("running", "paused", 99), one(99, true, "Paused"));
  EXPECT_TRUE(p.adopt);
  EXPECT_EQ(p.next.state, "paused");
  EXPECT_EQ(p.next.desired_state, "paused");
  p = plan_recovery(vm("starting", "running", 99), one(99, true, "Running", true));
  EXPECT_EQ(p.next.state, "running");
  EXPECT_TRUE(p.ready);
}

TEST(Recovery, AnOrphanFoundInTheCgroupReplacesAStaleRecord) {
  // The row names a pid that is gone; the cgroup holds the real VMM.
  const RecoveryPlan p = plan_recovery(vm("running", "running", 50), one(60, true));
  EXPECT_TRUE(p.adopt);
  EXPECT_EQ(p.next.pid, 60);
}

TEST(Recovery, AVmmThatDoesNotAnswerIsKilled) {
  const RecoveryPlan p = plan_recovery(vm("running", "running", 99), one(99, false));
  EXPECT_TRUE(p.kill);
  EXPECT_FALSE(p.adopt);
  EXPECT_EQ(p.next.pid, 0);
  EXPECT_EQ(p.next.state, "crashed");
  EXPECT_EQ(p.next.desired_state, "stopped");
  EXPECT_NE(p.next.last_exit.find("not answering"), std::string::npos) << p.next.last_exit;
  EXPECT_FALSE(p.restart);
}

TEST(Recovery, TwoVmmsForOneVmAreBothKilledEvenIfOneAnswers) {
  VmmFindings f = one(10, true);
  f.live = {10, 11};
  f.answers = false;  // the daemon only asks when there is exactly one
  const RecoveryPlan p = plan_recovery(vm("running", "running", 10, "on-failure"), f);
  EXPECT_TRUE(p.kill);
  EXPECT_FALSE(p.adopt);
  EXPECT_EQ(p.next.pid, 0);
  EXPECT_EQ(p.next.state, "crashed");
  EXPECT_TRUE(p.restart) << "on-failure starts it again, once the strays are gone";
  EXPECT_NE(p.next.last_exit.find("2 VMM processes"), std::string::npos) << p.next.last_exit;
}

TEST(Recovery, CreatingWithoutProcessFinishesAsStoppedOrRollsBack) {
  VmmFindings f;
  f.disk_ok = true;
  RecoveryPlan p = plan_recovery(vm("creating", "running"), f);
  EXPECT_FALSE(p.remove);
  EXPECT_TRUE(p.save);
  EXPECT_EQ(p.next.state, "stopped");
  EXPECT_EQ(p.next.desired_state, "stopped");
  EXPECT_FALSE(p.restart);
  f.disk_ok = false;
  p = plan_recovery(vm("creating", "running"), f);
  EXPECT_TRUE(p.remove);
  EXPECT_FALSE(p.save);
}

TEST(Recovery, CreatingWithAMuteVmmIsKilledThenFinished) {
  VmmFindings f = one(5, false);
  f.disk_ok = true;
  const RecoveryPlan p = plan_recovery(vm("creating", "running"), f);
  EXPECT_TRUE(p.kill);
  EXPECT_EQ(p.next.state, "stopped");
  EXPECT_EQ(p.next.pid, 0);
  f.disk_ok = false;
  const RecoveryPlan q = plan_recovery(vm("creating", "running"), f);
  EXPECT_TRUE(q.kill);
  EXPECT_TRUE(q.remove);
}

TEST(Recovery, NoProcessCases) {
  VmmFindings none;
  // A recorded pid that is gone: the monitor reports it.
  RecoveryPlan p = plan_recovery(vm("running", "running", 99), none);
  EXPECT_FALSE(p.save);
  EXPECT_FALSE(p.kill);
  // Should run but nothing runs: crashed, restarted under a policy.
  p = plan_recovery(vm("running", "running", 0, "always"), none);
  EXPECT_EQ(p.next.state, "crashed");
  EXPECT_TRUE(p.restart);
  EXPECT_EQ(p.next.desired_state, "running");
  p = plan_recovery(vm("running", "running", 0, "no"), none);
  EXPECT_EQ(p.next.state, "crashed");
  EXPECT_FALSE(p.restart);
  EXPECT_EQ(p.next.desired_state, "stopped");
  // Stopping when nimbusd died: stopped.
  p = plan_recovery(vm("stopping", "stopped"), none);
  EXPECT_EQ(p.next.state, "stopped");
  // Already stopped: nothing to write.
  p = plan_recovery(vm("stopped", "stopped"), none);
  EXPECT_FALSE(p.save);
}

TEST(Recovery, LivePidsIsASortedUnionOfTheAcceptedOnes) {
  const auto out = live_pids({30, 10, 30, 0, -1, 20, 10}, [](pid_t p) { return p != 20; });
  EXPECT_EQ(out, (std::vector<pid_t>{10, 30}));
}

}  // namespace
}  // namespace nimbus::host
