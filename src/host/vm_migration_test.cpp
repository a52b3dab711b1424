// Live migration between two nimbusd over fake VMM processes: the source is the fixture's
// daemon, the target a second daemon in its own state directory, reached through its API
// router (handle_host_request) as the real peer reaches it over TCP.
#include "host/vm_migration.h"

#include <thread>

#include "common/http_listen.h"
#include "host/daemon_test_fixture.h"
#include "host/host_api.h"

namespace nimbus::host {
namespace {

using nlohmann::json;

// The target's API, in process: the same routes and parsing as over TCP.
class LoopbackPeer : public MigrationPeer {
 public:
  explicit LoopbackPeer(HostOps& target) : target_(target) {}
  Result<json> prepare(const json& incoming) override {
    return call("POST", "/v1/vms/incoming", incoming.dump());
  }
  Result<json> commit(const std::string& name) override {
    return call("POST", "/v1/vms/" + name + "/incoming/commit", "");
  }
  Status abort(const std::string& name) override {
    return call("DELETE", "/v1/vms/" + name + "/incoming", "").status();
  }

 private:
  Result<json> call(const std::string& method, const std::string& path, const std::string& body) {
    HostResponse r = handle_host_request(target_, method, path, body);
    json j = json::parse(r.body, nullptr, false);
    if (r.status / 100 == 2) return j;
    const std::string code = j.is_object() ? j["error"].value("code", "") : "";
    const std::string msg = j.is_object() ? j["error"].value("message", "") : r.body;
    if (r.status == 409) {
      return code == "InsufficientCapacity" ? Status::insufficient_capacity(msg)
                                            : Status::conflict(msg);
    }
    if (r.status == 404) return Status::not_found(msg);
    if (r.status == 400) return Status::invalid_argument(msg);
    return Status::internal(msg);
  }
  HostOps& target_;
};

class MigrationTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    tdir_ = std::filesystem::path(options.state_dir).parent_path() / "target";
    std::filesystem::create_directories(tdir_);
    target_options = options;
    target_options.state_dir = (tdir_ / "state").string();
    target = std::make_shared<FakeVmProcesses>();
    target_daemon = std::make_unique<Daemon>(target_options, target);
    ASSERT_TRUE(target_daemon->init().ok());
    daemon->migration().poll_ms = 0;
    use_loopback();
    // When the source's VMM completes, the target's VMM runs the guest.
    fake->on_migrated = [this](const std::string& vm, const std::string&) {
      target->complete_incoming(vm);
    };
  }
  void TearDown() override {
    target_daemon.reset();
    DaemonTest::TearDown();
  }
  // The source daemon reaches the target through its router; after a restart too.
  void use_loopback() {
    peer_calls = 0;
    daemon->migration().poll_ms = 0;
    // The factory is the only way the source reaches a target: swap it in.
    migration_factory_for(*daemon) =
        [this](const std::string& t, const std::string&) -> Result<std::unique_ptr<MigrationPeer>> {
      peer_calls++;
      last_target = t;
      if (unreachable) return Status::unavailable("cannot connect to " + t);
      return std::unique_ptr<MigrationPeer>(new LoopbackPeer(*target_daemon));
    };
  }
  static MigrationPeerFactory& migration_factory_for(Daemon& d) { return d.migration().peers(); }

  MigrateRequest request() {
    MigrateRequest r;
    r.target = "http://127.0.0.1:7002";
    r.target_token = "secret";
    return r;
  }

  DaemonOptions target_options;
  std::shared_ptr<FakeVmProcesses> target;
  std::unique_ptr<Daemon> target_daemon;
  int peer_calls = 0;
  std::string last_target;
  bool unreachable = false;

 private:
  std::filesystem::path tdir_;
};

VmInfo create_with_forward(Daemon& d, const std::string& name, uint16_t port) {
  CreateRequest r;
  r.name = name;
  config::PortForward f;
  f.host_address = "127.0.0.1";
  f.host_port = port;
  f.guest_port = 80;
  r.forwards = {f};
  r.restart_policy = "on-failure";
  auto vm = d.create_vm(r);
  EXPECT_TRUE(vm.ok()) << vm.message();
  return vm.ok() ? *vm : VmInfo{};
}

// A free TCP port on 127.0.0.1 (the forward is checked for binding on both hosts).
uint16_t free_port() {
  auto s = http::listen_tcp("test", "127.0.0.1:0");
  EXPECT_TRUE(s.ok());
  return s.ok() ? static_cast<uint16_t>(s->port()) : 0;
}

TEST_F(MigrationTest, MovesTheVmAndDeletesItHere) {
  const uint16_t port = free_port();
  VmInfo before = create_with_forward(*daemon, "web1", port);
  ASSERT_EQ(get("web1").state, "starting");
  {
    // Only a running VM migrates.
    auto r = daemon->migrate_vm("web1", request());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), Code::kConflict) << r.message();
  }
  fake->proc(static_cast<pid_t>(get("web1").pid)).agent_ready = true;
  daemon->monitor_once();
  ASSERT_EQ(get("web1").state, "running");

  auto r = daemon->migrate_vm("web1", request());
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->name, "web1");
  EXPECT_EQ(r->target, "http://127.0.0.1:7002");
  EXPECT_DOUBLE_EQ(r->downtime_ms, 12.5);
  EXPECT_EQ(r->ram_bytes_sent, 1000000u);
  EXPECT_EQ(r->disk_bytes_sent, 65536u);
  EXPECT_EQ(r->vm.value("state", ""), "running");
  EXPECT_TRUE(r->warning.empty()) << r->warning;

  // Gone here: record, process, cgroup, directory; its slot and allocation free.
  EXPECT_EQ(daemon->get_vm("web1").code(), Code::kNotFound);
  EXPECT_TRUE(fake->live_of("web1").empty());
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(options.state_dir) / "vms/web1"));
  EXPECT_EQ(capacity().cpus.allocated, 0u);
  EXPECT_EQ(fake->count("migrate web1 tcp:127.0.0.1:4444"), 1u);

  // There: an ordinary running VM with the same definition, MACs and slot.
  EXPECT_EQ(target->count("incoming web1 tcp:127.0.0.1:0"), 1u);
  auto there = target_daemon->get_vm("web1");
  ASSERT_TRUE(there.ok());
  EXPECT_EQ(there->record.state, "running");
  EXPECT_EQ(there->record.desired_state, "running");
  EXPECT_EQ(there->record.restart_policy, "on-failure");
  ASSERT_EQ(there->record.forwards.size(), 1u);
  EXPECT_EQ(there->record.forwards[0].host_port, port);
  EXPECT_EQ(there->record.forwards[0].host_address, "127.0.0.1");
  EXPECT_EQ(there->record.slot, before.record.slot);
  EXPECT_EQ(vm_user_mac(there->record), vm_user_mac(before.record));
  EXPECT_EQ(vm_host_mac(there->record), vm_host_mac(before.record));
  // Its VMM started without the forwards (the source's held them) and took them at the
  // commit.
  EXPECT_EQ(target->count("forwards web1 1"), 1u);
  EXPECT_EQ(target->forwards["web1"].size(), 1u);
  EXPECT_EQ(there->migration.value("state", ""), "completed");
  EXPECT_EQ(there->migration.value("role", ""), "target");
  // Not busy any more: ordinary operations work.
  EXPECT_TRUE(target_daemon->pause_vm("web1").ok());
  EXPECT_EQ(peer_calls, 1);
}

TEST_F(MigrationTest, ForwardsForTheTarget) {
  fake->spawn_ready = true;
  const uint16_t port = free_port();
  create_with_forward(*daemon, "web1", port);
  daemon->monitor_once();
  // The caller gives the forwards the VM has there (through the API: its parser), one of
  // them on an address this host does not have: left out at once, with a warning.
  json body = {{"target", "http://127.0.0.1:7002"},
               {"forwards",
                {{{"host_port", port}, {"guest_port", 80}, {"host_address", "127.0.0.3"}},
                 {{"host_port", port}, {"guest_port", 22}, {"host_address", "192.0.2.77"}}}}};
  HostResponse r = handle_host_request(*daemon, "POST", "/v1/vms/web1/migrate", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto there = target_daemon->get_vm("web1");
  ASSERT_TRUE(there.ok());
  ASSERT_EQ(there->record.forwards.size(), 2u);
  EXPECT_EQ(there->record.forwards[0].host_address, "127.0.0.3");
  ASSERT_EQ(target->forwards["web1"].size(), 1u);  // the one it can listen on
  EXPECT_EQ(target->forwards["web1"][0].host_address, "127.0.0.3");
  EXPECT_TRUE(contains(there->migration.value("warning", ""), "192.0.2.77"))
      << there->migration.dump();
  // A bad forwards list is a 400 and nothing moves.
  create_with_forward(*daemon, "web2", free_port());
  r = handle_host_request(*daemon, "POST", "/v1/vms/web2/migrate",
                          json{{"target", "http://127.0.0.1:7002"}, {"forwards", 5}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;
}

TEST_F(MigrationTest, KeepsTheGuestsMacsInAnotherSlot) {
  fake->spawn_ready = true;
  CreateRequest cr;
  cr.name = "web1";
  cr.network = VmNetwork{100, "172.31.16.5/20", "", 1450};
  ASSERT_TRUE(daemon->create_vm(cr).ok());
  daemon->monitor_once();
  const VmRecord src = get("web1");
  // The target's first slot is taken: a VM on a private network gets another, with the
  // MACs it had, and they survive a restart of the target nimbusd (the state database).
  CreateRequest other;
  other.name = "other";
  ASSERT_TRUE(target_daemon->create_vm(other).ok());
  auto r = daemon->migrate_vm("web1", request());
  ASSERT_TRUE(r.ok()) << r.message();
  target_daemon.reset();
  target_daemon = std::make_unique<Daemon>(target_options, target);
  ASSERT_TRUE(target_daemon->init().ok());
  auto there = target_daemon->get_vm("web1");
  ASSERT_TRUE(there.ok());
  EXPECT_NE(there->record.slot, src.slot);
  EXPECT_EQ(vm_user_mac(there->record), vm_user_mac(src));
  EXPECT_EQ(vm_host_mac(there->record), vm_host_mac(src));
  EXPECT_NE(vm_user_mac(there->record), vm_mac(there->record.slot, 0));
}

TEST_F(MigrationTest, AHostNetworkVmNeedsItsSlotThere) {
  fake->spawn_ready = true;
  create("web1");
  daemon->monitor_once();
  CreateRequest other;
  other.name = "other";
  ASSERT_TRUE(target_daemon->create_vm(other).ok());  // slot 2, web1's
  auto r = daemon->migrate_vm("web1", request());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kConflict);
  EXPECT_TRUE(contains(r.message(), "slot 2 is taken here")) << r.message();
  EXPECT_EQ(get("web1").state, "running");
  EXPECT_EQ(target_daemon->get_vm("web1").code(), Code::kNotFound);
}

TEST_F(MigrationTest, AFailedMigrationLeavesTheVmRunningHereAndNothingThere) {
  fake->spawn_ready = true;
  create("web1");
  daemon->monitor_once();
  const VmRecord src = get("web1");
  fake->migrate_outcome = "failed";
  auto r = daemon->migrate_vm("web1", request());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_TRUE(contains(r.message(), "the connection to the target was reset")) << r.message();
  const VmRecord after = get("web1");
  EXPECT_EQ(after.state, "running");
  EXPECT_EQ(after.pid, src.pid);
  EXPECT_EQ(fake->live_of("web1").size(), 1u);
  auto info = daemon->get_vm("web1");
  EXPECT_EQ(info->migration.value("state", ""), "failed");
  // The target's half-made VM is gone, its VMM killed.
  EXPECT_EQ(target_daemon->get_vm("web1").code(), Code::kNotFound);
  EXPECT_TRUE(target->live_of("web1").empty());
  // And the VM is not busy: it can try again.
  fake->migrate_outcome = "completed";
  EXPECT_TRUE(daemon->migrate_vm("web1", request()).ok());
}

TEST_F(MigrationTest, ProgressIsShownAndATimeoutCancels) {
  fake->spawn_ready = true;
  create("web1");
  daemon->monitor_once();
  const VmRecord src = get("web1");
  fake->migrate_outcome = "active";  // never ends by itself
  MigrateRequest req = request();
  req.timeout_s = 1;
  Result<MigrateResult> r = Status::internal("not run");
  std::thread t([&] { r = daemon->migrate_vm("web1", req); });
  // Meanwhile GET /v1/vms/web1 shows it, and the VM is busy.
  bool seen = false;
  for (int i = 0; i < 500 && !seen; i++) {
    auto vm = daemon->get_vm("web1");
    seen = vm.ok() && vm->migration.is_object() && vm->migration.value("state", "") == "active";
    if (seen) {
      EXPECT_EQ(vm->migration.value("role", ""), "source");
      EXPECT_EQ(vm->migration.value("target", ""), "http://127.0.0.1:7002");
      EXPECT_EQ(daemon->pause_vm("web1").code(), Code::kConflict);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  t.join();
  EXPECT_TRUE(seen);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kDeadlineExceeded) << r.message();
  EXPECT_EQ(fake->count("cancel web1"), 1u);
  EXPECT_EQ(get("web1").state, "running");
  EXPECT_EQ(get("web1").pid, src.pid);
  EXPECT_EQ(target_daemon->get_vm("web1").code(), Code::kNotFound);
  EXPECT_EQ(daemon->get_vm("web1")->migration.value("state", ""), "failed");
}

TEST_F(MigrationTest, TheTargetsRefusalKeepsItsCode) {
  fake->spawn_ready = true;
  create("web1");
  daemon->monitor_once();
  // A VM of that name there: Conflict.
  CreateRequest same;
  same.name = "web1";
  ASSERT_TRUE(target_daemon->create_vm(same).ok());
  auto r = daemon->migrate_vm("web1", request());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kConflict) << r.message();
  EXPECT_TRUE(contains(r.message(), "already exists")) << r.message();
  EXPECT_EQ(get("web1").state, "running");
  EXPECT_EQ(fake->count("migrate web1 tcp:127.0.0.1:4444"), 0u);
  // Too big for the target: InsufficientCapacity.
  ASSERT_TRUE(target_daemon->delete_vm("web1").ok());
  CreateRequest big;
  big.name = "big";
  big.cpus = 2;
  ASSERT_TRUE(target_daemon->create_vm(big).ok());
  r = daemon->migrate_vm("web1", request());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kInsufficientCapacity) << r.message();
  // Unreachable: Unavailable (502 at the API), the VM untouched.
  unreachable = true;
  r = daemon->migrate_vm("web1", request());
  EXPECT_EQ(r.code(), Code::kUnavailable) << r.message();
  EXPECT_EQ(get("web1").state, "running");
}

TEST_F(MigrationTest, TheTargetVmmDyingFailsTheMigration) {
  fake->spawn_ready = true;
  create("web1");
  daemon->monitor_once();
  target->spawn_dies = true;
  auto r = daemon->migrate_vm("web1", request());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(get("web1").state, "running");
  EXPECT_EQ(target_daemon->get_vm("web1").code(), Code::kNotFound);
}

TEST_F(MigrationTest, TheTargetCleansUpByItself) {
  IncomingRequest req;
  req.vm.name = "lost";
  req.slot = 9;
  req.mac_user = "52:54:00:80:00:09";
  req.mac_host = "52:54:00:81:00:09";
  auto prepared = target_daemon->prepare_incoming(req);
  ASSERT_TRUE(prepared.ok()) << prepared.message();
  EXPECT_EQ(prepared->listen, "tcp:127.0.0.1:4444");
  EXPECT_EQ(prepared->vm.record.state, "incoming");
  // Busy meanwhile: nothing else may touch it (but commit and abort).
  EXPECT_EQ(target_daemon->start_vm("lost").code(), Code::kConflict);
  // Not arrived yet: commit refused, the VM stays incoming.
  EXPECT_EQ(target_daemon->commit_incoming("lost").code(), Code::kConflict);
  EXPECT_FALSE(target_daemon->migration().check_incoming("lost"));
  // The source went away: the VMM says failed, and the VM goes.
  target->fail_incoming("lost");
  EXPECT_TRUE(target_daemon->migration().check_incoming("lost"));
  EXPECT_EQ(target_daemon->get_vm("lost").code(), Code::kNotFound);
  EXPECT_TRUE(target->live_of("lost").empty());

  // One whose VMM runs the guest commits itself, even without the source's word.
  req.vm.name = "found";
  req.slot = 10;
  req.mac_host = "52:54:00:81:00:0a";
  ASSERT_TRUE(target_daemon->prepare_incoming(req).ok());
  target->complete_incoming("found");
  EXPECT_TRUE(target_daemon->migration().check_incoming("found"));
  EXPECT_EQ(target_daemon->get_vm("found")->record.state, "running");
  // The source's late commit gets the same answer; an abort now is refused.
  EXPECT_TRUE(target_daemon->commit_incoming("found").ok());
  EXPECT_EQ(target_daemon->abort_incoming("found").code(), Code::kConflict);
  EXPECT_EQ(target_daemon->get_vm("found")->record.state, "running");
}

TEST_F(MigrationTest, ARestartedTargetKeepsOnlyAnArrivedVm) {
  IncomingRequest req;
  req.vm.name = "waiting";
  req.slot = 9;
  req.mac_user = "52:54:00:80:00:09";
  req.mac_host = "52:54:00:81:00:09";
  ASSERT_TRUE(target_daemon->prepare_incoming(req).ok());
  req.vm.name = "arrived";
  req.slot = 10;
  req.mac_host = "52:54:00:81:00:0a";
  ASSERT_TRUE(target_daemon->prepare_incoming(req).ok());
  target->complete_incoming("arrived");
  // nimbusd restarts before anyone committed either.
  target_daemon.reset();
  target_daemon = std::make_unique<Daemon>(target_options, target);
  ASSERT_TRUE(target_daemon->init().ok());
  EXPECT_EQ(target_daemon->get_vm("waiting").code(), Code::kNotFound);
  EXPECT_TRUE(target->live_of("waiting").empty());
  EXPECT_FALSE(
      std::filesystem::exists(std::filesystem::path(target_options.state_dir) / "vms/waiting"));
  auto arrived = target_daemon->get_vm("arrived");
  ASSERT_TRUE(arrived.ok());
  EXPECT_EQ(arrived->record.desired_state, "running");
  EXPECT_EQ(target->live_of("arrived").size(), 1u);
  EXPECT_NE(arrived->record.state, "incoming");
}

TEST_F(MigrationTest, AVmmThatMigratedAwayIsNeverRestartedHere) {
  // Its VMM migrated the VM (the source nimbusd was not there to delete it, or someone used
  // the VMM's API): stopped, and not started again whatever its restart policy.
  fake->spawn_ready = true;
  create("web1", 1, 256, true, "always");
  daemon->monitor_once();
  ASSERT_TRUE(fake->migration("web1", "PUT", json{{"destination", "tcp:127.0.0.1:1"}}).ok());
  ASSERT_TRUE(fake->migration("web1", "GET", json()).ok());  // completed: the VMM exits
  daemon->monitor_once();
  const VmRecord after = get("web1");
  EXPECT_EQ(after.state, "stopped");
  EXPECT_EQ(after.desired_state, "stopped");
  EXPECT_TRUE(contains(after.last_exit, "migrated")) << after.last_exit;
  EXPECT_EQ(fake->count("spawn web1"), 1u);
  EXPECT_TRUE(fake->live_of("web1").empty());
}

TEST_F(MigrationTest, TheTargetChecksTheImage) {
  IncomingRequest req;
  req.vm.name = "x";
  req.mac_user = "52:54:00:80:00:09";
  req.mac_host = "52:54:00:81:00:09";
  req.vm.image = "nope";
  EXPECT_EQ(target_daemon->prepare_incoming(req).code(), Code::kConflict);
  req.vm.image = "default";
  req.image_disk_bytes = 12345;  // not our 1 MiB disk
  auto r = target_daemon->prepare_incoming(req);
  EXPECT_EQ(r.code(), Code::kConflict);
  EXPECT_TRUE(contains(r.message(), "not the source's")) << r.message();
  EXPECT_EQ(target_daemon->get_vm("x").code(), Code::kNotFound);
}

TEST(MigrationParse, MigrateRequest) {
  auto r = parse_migrate_request(json{{"target", "http://10.0.0.2:7002"}});
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->max_downtime_ms, 100u);
  EXPECT_EQ(r->timeout_s, 300u);
  EXPECT_EQ(r->target_token, "");
  r = parse_migrate_request(json{{"target", "http://h:1"},
                                 {"target_token", "t"},
                                 {"max_downtime_ms", 250},
                                 {"timeout_s", 60}});
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->max_downtime_ms, 250u);
  EXPECT_EQ(r->timeout_s, 60u);
  for (const json& bad : {json::object(), json{{"target", 5}}, json{{"target", "unix:/x"}},
                          json{{"target", "http://h:1"}, {"max_downtime_ms", 0}},
                          json{{"target", "http://h:1"}, {"max_downtime_ms", -1}},
                          json{{"target", "http://h:1"}, {"timeout_s", 5}},
                          json{{"target", "http://h:1"}, {"target_token", "a\nb"}},
                          json{{"target", "http://h:1"}, {"extra", 1}}, json::array()}) {
    EXPECT_FALSE(parse_migrate_request(bad).ok()) << bad.dump();
  }
}

TEST(MigrationParse, IncomingRequestRoundTrip) {
  VmRecord vm;
  vm.name = "web1";
  vm.image = "default";
  vm.cpus = 2;
  vm.memory_mib = 512;
  vm.disk_mib = 64;
  vm.slot = 7;
  vm.restart_policy = "always";
  config::PortForward f;
  f.host_address = "127.0.0.5";
  f.host_port = 8080;
  f.guest_port = 80;
  vm.forwards = {f};
  vm.network = VmNetwork{100, "172.31.16.5/20", "172.31.16.1", 1450};
  ImageInfo image;
  image.disk = "/nonexistent";
  image.files = {{"rootfs.ext4", "disk", 10, std::string(64, 'a')}};
  auto r = parse_incoming_request(incoming_body(vm, image, 90));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->vm.name, "web1");
  EXPECT_EQ(r->vm.cpus, 2u);
  EXPECT_EQ(r->vm.memory_mib, 512u);
  EXPECT_EQ(r->vm.disk_mib, 64u);
  EXPECT_EQ(r->vm.restart_policy, "always");
  ASSERT_EQ(r->vm.forwards.size(), 1u);
  EXPECT_EQ(r->vm.forwards[0].host_address, "127.0.0.5");
  ASSERT_TRUE(r->vm.network);
  EXPECT_EQ(*r->vm.network, *vm.network);
  EXPECT_EQ(r->mac_user, vm_user_mac(vm));
  EXPECT_EQ(r->mac_host, vm_host_mac(vm));
  EXPECT_EQ(r->slot, 7u);
  EXPECT_EQ(r->timeout_s, 90u);
  ASSERT_EQ(r->image_files.size(), 1u);
  EXPECT_EQ(r->image_files[0].sha256, std::string(64, 'a'));

  json good = incoming_body(vm, image, 90);
  for (auto mutate : std::vector<std::function<void(json&)>>{
           [](json& j) { j.erase("macs"); }, [](json& j) { j.erase("name"); },
           [](json& j) { j["start"] = true; },
           [](json& j) { j["macs"]["user"] = "01:00:00:00:00:01"; },  // multicast
           [](json& j) { j["macs"]["host"] = "zz"; },
           [](json& j) { j["macs"]["other"] = "52:54:00:00:00:01"; },
           [](json& j) { j["slot"] = 70000; },
           [](json& j) { j["image_files"][0]["sha256"] = "abc"; },
           [](json& j) { j["image_files"] = json::array({1}); }, [](json& j) { j["cpus"] = 0; },
           [](json& j) { j["bogus"] = 1; }}) {
    json bad = good;
    mutate(bad);
    EXPECT_FALSE(parse_incoming_request(bad).ok()) << bad.dump();
  }
}

}  // namespace
}  // namespace nimbus::host
