// nimbusd's operations through a fake of the VM processes (daemon_test_fixture.h): the
// state machine, what each operation refuses in each state (with which code), capacity
// accounting after each operation, and that a refusal changes nothing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sstream>

#include "common/log_capture.h"
#include "host/daemon_test_fixture.h"
#include "host/host_json.h"

namespace nimbus::host {
namespace {

TEST_F(DaemonTest, CreateStartsTheVmAndTheHostAccountsForIt) {
  const VmInfo vm = create("web1", 1, 256);
  EXPECT_EQ(vm.record.state, "starting");
  EXPECT_EQ(vm.record.desired_state, "running");
  EXPECT_NE(vm.record.pid, 0);
  EXPECT_EQ(vm.record.disk_mib, 1u);  // the image's size
  EXPECT_EQ(fake->count("spawn web1"), 1u);
  const Capacity c = capacity();
  EXPECT_EQ(c.cpus.allocated, 1u);
  EXPECT_EQ(c.memory_mib.allocated, 256u + 64u);
  EXPECT_EQ(c.disk_mib.allocated, 1u);
  // Generated names, and a VM created stopped holds only its disk.
  CreateRequest r;
  r.start = false;
  auto second = daemon->create_vm(r);
  ASSERT_TRUE(second.ok()) << second.message();
  EXPECT_EQ(second->record.name, "vm-1");
  EXPECT_EQ(second->record.state, "stopped");
  EXPECT_EQ(second->record.pid, 0);
  EXPECT_EQ(capacity().cpus.allocated, 1u);
  EXPECT_EQ(capacity().disk_mib.allocated, 2u);
}

TEST_F(DaemonTest, TheStateMachineAndWhatEachStateRefuses) {
  create("web1");
  // running|starting: pause; pausing twice is fine; resize and start are refused.
  auto r = daemon->start_vm("web1");
  EXPECT_EQ(r.code(), Code::kConflict) << r.message();
  EXPECT_TRUE(contains(r.message(), "already")) << r.message();
  ResizeRequest grow;
  grow.cpus = 2;
  EXPECT_EQ(daemon->resize_vm("web1", grow).code(), Code::kConflict);
  ASSERT_TRUE(daemon->pause_vm("web1").ok());
  EXPECT_EQ(get("web1").state, "paused");
  EXPECT_EQ(get("web1").desired_state, "paused");
  EXPECT_EQ(fake->count("pause web1"), 1u);
  ASSERT_TRUE(daemon->pause_vm("web1").ok());
  EXPECT_EQ(fake->count("pause web1"), 1u) << "pausing a paused VM asks nothing of the VMM";
  // paused: resume back to starting (the agent has not said ready).
  auto resumed = daemon->resume_vm("web1");
  ASSERT_TRUE(resumed.ok()) << resumed.message();
  EXPECT_EQ(resumed->record.state, "starting");
  EXPECT_EQ(daemon->resume_vm("web1").code(), Code::kConflict) << "only a paused VM can be resumed";
  // stop: graceful through the agent, then stopped; stopping again is fine.
  auto stopped = daemon->stop_vm("web1", false, 30);
  ASSERT_TRUE(stopped.ok()) << stopped.message();
  EXPECT_TRUE(stopped->graceful);
  EXPECT_EQ(stopped->vm.record.state, "stopped");
  EXPECT_EQ(stopped->vm.record.pid, 0);
  EXPECT_TRUE(contains(stopped->vm.record.last_exit, "status 0")) << stopped->vm.record.last_exit;
  EXPECT_TRUE(daemon->stop_vm("web1", true, 0).ok());
  EXPECT_EQ(capacity().cpus.allocated, 0u);
  // stopped: pause, resume and snapshot are refused; resize is allowed; disks only grow.
  EXPECT_EQ(daemon->pause_vm("web1").code(), Code::kConflict);
  EXPECT_EQ(daemon->resume_vm("web1").code(), Code::kConflict);
  EXPECT_EQ(daemon->create_snapshot("web1", "s1").code(), Code::kConflict);
  auto resized = daemon->resize_vm("web1", grow);
  ASSERT_TRUE(resized.ok()) << resized.message();
  EXPECT_EQ(resized->record.cpus, 2u);
  ResizeRequest shrink;
  shrink.disk_mib = 0;
  auto refused = daemon->resize_vm("web1", shrink);
  EXPECT_EQ(refused.code(), Code::kInvalidArgument);
  ResizeRequest bigger;
  bigger.disk_mib = 8;
  ASSERT_TRUE(daemon->resize_vm("web1", bigger).ok());
  EXPECT_EQ(capacity().disk_mib.allocated, 8u);
  // start, restart (stops the VMM first), delete.
  auto started = daemon->start_vm("web1");
  ASSERT_TRUE(started.ok()) << started.message();
  EXPECT_EQ(started->record.state, "starting");
  const int64_t before = started->record.pid;
  auto restarted = daemon->restart_vm("web1", true, 0);
  ASSERT_TRUE(restarted.ok()) << restarted.message();
  EXPECT_NE(restarted->record.pid, before);
  EXPECT_TRUE(fake->live_of("web1") ==
              std::vector<pid_t>{static_cast<pid_t>(restarted->record.pid)});
  ASSERT_TRUE(daemon->delete_vm("web1").ok());
  EXPECT_TRUE(fake->live_of("web1").empty()) << "delete stops the VM hard first";
  EXPECT_EQ(daemon->get_vm("web1").code(), Code::kNotFound);
  EXPECT_EQ(daemon->delete_vm("web1").code(), Code::kNotFound);
  EXPECT_EQ(capacity().disk_mib.allocated, 0u);
}

TEST_F(DaemonTest, CapacityRefusalsAndAccounting) {
  create("big", 2, 512);
  CreateRequest r;
  r.name = "web2";
  auto refused = daemon->create_vm(r);
  ASSERT_EQ(refused.code(), Code::kInsufficientCapacity);
  EXPECT_TRUE(contains(refused.message(), "cannot create VM 'web2'")) << refused.message();
  EXPECT_TRUE(contains(refused.message(), "not enough vCPUs")) << refused.message();
  EXPECT_EQ(daemon->get_vm("web2").code(), Code::kNotFound) << "a refused creation leaves nothing";
  // Created stopped it fits (only its disk), but it cannot start while "big" runs.
  create("web2", 1, 256, false);
  auto start = daemon->start_vm("web2");
  EXPECT_EQ(start.code(), Code::kInsufficientCapacity) << start.message();
  EXPECT_EQ(get("web2").state, "stopped");
  // A stopped VM may be resized beyond what is free now only for its disk...
  ResizeRequest disk;
  disk.disk_mib = 200;
  auto too_big = daemon->resize_vm("web2", disk);
  EXPECT_EQ(too_big.code(), Code::kInsufficientCapacity);
  EXPECT_TRUE(contains(too_big.message(), "not enough disk")) << too_big.message();
  // ... and once "big" stops, web2 starts.
  ASSERT_TRUE(daemon->stop_vm("big", true, 0).ok());
  EXPECT_EQ(capacity().cpus.allocated, 0u);
  ASSERT_TRUE(daemon->start_vm("web2").ok());
  EXPECT_EQ(capacity().cpus.allocated, 1u);
  EXPECT_EQ(capacity().memory_mib.allocated, 320u);
  // Memory: 1024 MiB for VMs; 320 used; a 768 MiB VM needs 832.
  CreateRequest mem;
  mem.name = "mem";
  mem.memory_mib = 768;
  auto no_memory = daemon->create_vm(mem);
  EXPECT_EQ(no_memory.code(), Code::kInsufficientCapacity);
  EXPECT_TRUE(contains(no_memory.message(), "not enough memory")) << no_memory.message();
}

// Everything the API can see: the host object, every VM (with usage) and the calls made
// to the VM processes.
struct Seen {
  nlohmann::json host, vms;
  std::vector<std::string> calls;
  bool operator==(const Seen&) const = default;
};

Seen seen(Daemon& d, FakeVmProcesses& fake) {
  Seen s;
  s.host = to_json(*d.host_info());
  s.vms = nlohmann::json::array();
  const auto vms = d.list_vms();
  for (const VmInfo& v : *vms) s.vms.push_back(to_json(v));
  std::lock_guard<std::mutex> lock(fake.mu);
  s.calls = fake.calls;
  return s;
}

TEST_F(DaemonTest, RefusalsChangeNothing) {
  create("web1");
  create("web2", 2, 256, false);
  // A host port another program holds.
  const int held = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(held, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(held, reinterpret_cast<sockaddr*>(&a), &len);

  const Seen before = seen(*daemon, *fake);
  CreateRequest dup;
  dup.name = "web1";
  CreateRequest no_image;
  no_image.name = "web3";
  no_image.image = "nope";
  CreateRequest too_big;
  too_big.name = "web3";
  too_big.cpus = 2;
  CreateRequest port_in_use;
  port_in_use.name = "web3";
  port_in_use.forwards.push_back(config::PortForward{.protocol = "tcp",
                                                     .host_address = "127.0.0.1",
                                                     .host_port = ntohs(a.sin_port),
                                                     .guest_address = "",
                                                     .guest_port = 80});
  ResizeRequest cpus;
  cpus.cpus = 2;
  ResizeRequest shrink;
  shrink.disk_mib = 0;
  struct Refusal {
    const char* what;
    Status status;
    Code code;
  };
  const Refusal refusals[] = {
      {"create: name taken", daemon->create_vm(dup).status(), Code::kConflict},
      {"create: no such image", daemon->create_vm(no_image).status(), Code::kNotFound},
      {"create: does not fit", daemon->create_vm(too_big).status(), Code::kInsufficientCapacity},
      {"create: host port in use", daemon->create_vm(port_in_use).status(), Code::kConflict},
      {"start: running", daemon->start_vm("web1").status(), Code::kConflict},
      {"start: does not fit", daemon->start_vm("web2").status(), Code::kInsufficientCapacity},
      {"resize: running", daemon->resize_vm("web1", cpus).status(), Code::kConflict},
      {"resize: shrink the disk", daemon->resize_vm("web2", shrink).status(),
       Code::kInvalidArgument},
      {"pause: stopped", daemon->pause_vm("web2").status(), Code::kConflict},
      {"resume: stopped", daemon->resume_vm("web2").status(), Code::kConflict},
      {"snapshot: stopped", daemon->create_snapshot("web2", "").status(), Code::kConflict},
      {"restore: no such snapshot", daemon->restore_snapshot("web1", "nope").status(),
       Code::kNotFound},
      {"delete snapshot: none", daemon->delete_snapshot("web1", "nope"), Code::kNotFound},
      {"snapshots: no such VM", daemon->list_snapshots("ghost").status(), Code::kNotFound},
      {"get: no such VM", daemon->get_vm("ghost").status(), Code::kNotFound},
      {"start: no such VM", daemon->start_vm("ghost").status(), Code::kNotFound},
      {"stop: no such VM", daemon->stop_vm("ghost", false, 1).status(), Code::kNotFound},
      {"delete: no such VM", daemon->delete_vm("ghost"), Code::kNotFound},
  };
  ::close(held);
  for (const Refusal& r : refusals) {
    EXPECT_EQ(r.status.code(), r.code)
        << r.what << ": " << code_name(r.status.code()) << " " << r.status.message();
    EXPECT_FALSE(r.status.message().empty()) << r.what;
  }
  EXPECT_TRUE(seen(*daemon, *fake) == before) << "a refused request changed something";
  EXPECT_FALSE(std::filesystem::exists(options.state_dir + "/vms/web3"));
}

TEST_F(DaemonTest, AVmmThatDiesAtOnceRollsBackTheCreationAndCrashesAStart) {
  fake->spawn_dies = true;
  CreateRequest r;
  r.name = "web1";
  auto created = daemon->create_vm(r);
  ASSERT_EQ(created.code(), Code::kInternal);
  EXPECT_TRUE(contains(created.message(), "did not start")) << created.message();
  EXPECT_TRUE(contains(created.message(), "the VMM's last words")) << created.message();
  EXPECT_EQ(daemon->get_vm("web1").code(), Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(options.state_dir + "/vms/web1"));
  EXPECT_EQ(capacity().disk_mib.allocated, 0u);

  fake->spawn_dies = false;
  create("web2", 1, 256, false);
  fake->spawn_dies = true;
  auto started = daemon->start_vm("web2");
  ASSERT_EQ(started.code(), Code::kInternal);
  const VmRecord vm = get("web2");
  EXPECT_EQ(vm.state, "crashed");
  EXPECT_EQ(vm.desired_state, "stopped");
  EXPECT_EQ(vm.pid, 0);
  EXPECT_TRUE(contains(vm.last_exit, "status 1")) << vm.last_exit;
  EXPECT_EQ(capacity().cpus.allocated, 0u);
}

TEST_F(DaemonTest, AFailedPauseIsAnInternalErrorAndTheVmKeepsRunning) {
  create("web1");
  fake->pause_error = Status::unavailable("the VMM does not answer");
  auto r = daemon->pause_vm("web1");
  ASSERT_EQ(r.code(), Code::kInternal);
  EXPECT_TRUE(contains(r.message(), "pausing VM 'web1'")) << r.message();
  EXPECT_EQ(get("web1").state, "starting");
}

TEST_F(DaemonTest, SnapshotsPauseCopyAndRestore) {
  create("web1");
  auto s1 = daemon->create_snapshot("web1", "s1");
  ASSERT_TRUE(s1.ok()) << s1.message();
  EXPECT_EQ(s1->name, "s1");
  EXPECT_EQ(s1->cpus, 1u);
  EXPECT_GT(s1->size_bytes, 0u);
  const std::string dir = options.state_dir + "/vms/web1/snapshots/s1";
  EXPECT_TRUE(std::filesystem::exists(dir + "/state.snap"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/disk.qcow2"));
  {
    std::lock_guard<std::mutex> lock(fake->mu);
    const std::vector<std::string> tail(fake->calls.end() - 3, fake->calls.end());
    EXPECT_EQ(tail, (std::vector<std::string>{"pause web1", "snapshot web1", "resume web1"}));
  }
  EXPECT_EQ(daemon->create_snapshot("web1", "s1").code(), Code::kConflict);
  // A paused VM stays paused.
  ASSERT_TRUE(daemon->pause_vm("web1").ok());
  auto s2 = daemon->create_snapshot("web1", "");
  ASSERT_TRUE(s2.ok()) << s2.message();
  EXPECT_EQ(s2->name, "snap-1");
  EXPECT_EQ(get("web1").state, "paused");
  EXPECT_EQ(daemon->list_snapshots("web1")->size(), 2u);

  const int64_t old_pid = get("web1").pid;
  auto restored = daemon->restore_snapshot("web1", "s1");
  ASSERT_TRUE(restored.ok()) << restored.message();
  EXPECT_EQ(restored->record.state, "running");
  EXPECT_NE(restored->record.pid, old_pid);
  EXPECT_TRUE(fake->live_of("web1") ==
              std::vector<pid_t>{static_cast<pid_t>(restored->record.pid)});
  EXPECT_EQ(fake->count("restore web1"), 1u);
  fake->restore_state = "Paused";  // a VMM that restores paused is a paused VM
  auto paused = daemon->restore_snapshot("web1", "snap-1");
  ASSERT_TRUE(paused.ok()) << paused.message();
  EXPECT_EQ(paused->record.state, "paused");

  ASSERT_TRUE(daemon->delete_snapshot("web1", "s1").ok());
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_EQ(daemon->delete_snapshot("web1", "s1").code(), Code::kNotFound);
  EXPECT_EQ(daemon->list_snapshots("web1")->size(), 1u);
}

TEST_F(DaemonTest, RefusalsStateChangesAndFailedStepsAreLoggedWithTheirVm) {
  log::LogCapture log;
  create("web1");
  EXPECT_FALSE(daemon->start_vm("web1").ok());
  fake->pause_error = Status::unavailable("the VMM does not answer");
  EXPECT_FALSE(daemon->pause_vm("web1").ok());
  ASSERT_TRUE(daemon->stop_vm("web1", true, 0).ok());
  const std::string text = log.text();
  for (const char* line :
       {"info vm web1: created", "info vm web1: creating -> starting (desired running",
        "warning vm web1: start refused (Conflict): VM 'web1' is already starting",
        "error vm web1: pause failed (Internal): pausing VM 'web1': the VMM does not answer",
        "info vm web1: starting -> stopping", "info vm web1: stopping -> stopped"}) {
    EXPECT_TRUE(contains(text, line)) << line << " not in:\n" << text;
  }
}

}  // namespace
}  // namespace nimbus::host
