// Moves and drains (moves.cpp, the reconciler's act_move) against simulated hosts
// (fake_host_driver.h): the records, the claims, the calls, failures and a leader that died
// mid-move.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "cloud/cloud_server.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/ec2_api.h"

namespace nimbus::cloud {
namespace {

using Lines = std::vector<std::string>;

class MovesTest : public ::testing::Test {
 protected:
  InstanceRecord get(const std::string& id) {
    auto i = bed_.cloud().instance(id);
    EXPECT_TRUE(i.ok()) << id;
    return i.ok() ? *i : InstanceRecord{};
  }
  // Launches one n1.tiny in zone a and passes until it runs; the hosts then report it.
  std::string running() {
    RunRequest req = bed_.run_request();
    req.zone = "nimbus-west-1a";
    auto r = bed_.cloud().run_instances(req);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (!r.ok()) return "";
    const std::string id = r->instances.at(0).id;
    for (int n = 0; n < 5 && get(id).state != InstanceState::kRunning; ++n)
      bed_.reconciler().pass_now();
    EXPECT_EQ(get(id).state, InstanceState::kRunning);
    bed_.heartbeat_all();
    return id;
  }
  TestHost host(const std::string& id) {
    TestHost h;
    h.id = id;
    h.zone = "nimbus-west-1a";
    return h;
  }
  void join(const std::string& id, uint64_t cpus = 8) {
    TestHost h = host(id);
    h.cpus = cpus;
    auto r = bed_.heartbeat(h);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  bool claims(const std::string& host, const std::string& id) {
    return bed_.allocation(host).instances.count(id) > 0;
  }
  unsigned count(const Lines& lines, const std::string& line) {
    return static_cast<unsigned>(std::count(lines.begin(), lines.end(), line));
  }

  CloudTestBed bed_;
};

TEST_F(MovesTest, AMoveMigratesTheVmAndMovesTheRecordAndTheClaims) {
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  // Port 80 open: its forward follows its public address to the new host.
  auto rule = bed_.cloud().change_ingress("", "default",
                                          {SecurityRule{"tcp", 80, 80, {"0.0.0.0/0"}, {}}}, true);
  ASSERT_TRUE(rule.ok());
  bed_.reconciler().pass_now();
  const InstanceRecord before = get(id);
  ASSERT_EQ(before.host, "h-a-1");
  ASSERT_EQ(before.public_ip, "127.100.1.2");

  auto asked = bed_.cloud().request_move(id, "h-a-2");
  ASSERT_TRUE(asked.ok()) << asked.error().message;
  EXPECT_EQ(asked->move_to, "h-a-2");
  EXPECT_EQ(asked->move_id, 1u);
  EXPECT_EQ(asked->state, InstanceState::kRunning);  // DescribeInstances: running throughout
  EXPECT_EQ(asked->host, "h-a-1");

  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  // The source was told to migrate to the target's API with the target's token.
  const auto calls = bed_.driver().calls();
  auto m = std::find_if(calls.begin(), calls.end(), [&](const auto& c) {
    return c.method == "POST" && c.path == "/v1/vms/" + id + "/migrate";
  });
  ASSERT_NE(m, calls.end());
  EXPECT_EQ(m->host, "h-a-1");
  EXPECT_EQ((*m->body)["target"], "http://127.0.0.1:9000");
  EXPECT_EQ((*m->body)["target_token"], "host-token-h-a-2");
  EXPECT_EQ((*m->body)["max_downtime_ms"], 100);
  // Its forward on the target is on its public address there.
  ASSERT_EQ((*m->body)["forwards"].size(), 1u);
  EXPECT_EQ((*m->body)["forwards"][0]["host_address"], "127.100.2.2");
  EXPECT_EQ((*m->body)["forwards"][0]["host_port"], 80);
  // The target got the image first (it recreates the VM from its own copy).
  EXPECT_TRUE(bed_.driver().has_image("h-a-2", bed_.image_id()));

  const InstanceRecord after = get(id);
  EXPECT_EQ(after.host, "h-a-2");
  EXPECT_EQ(after.state, InstanceState::kRunning);
  EXPECT_EQ(after.id, before.id);
  EXPECT_EQ(after.private_ip, before.private_ip);
  EXPECT_EQ(after.subnet_id, before.subnet_id);
  EXPECT_EQ(after.public_ip, "127.100.2.2");  // re-pointed to the target's pool
  EXPECT_TRUE(after.move_to.empty());
  EXPECT_TRUE(after.move_from.empty());
  EXPECT_TRUE(after.last_move.ok);
  EXPECT_EQ(after.last_move.id, 1u);
  EXPECT_EQ(after.last_move.from, "h-a-1");
  EXPECT_EQ(after.last_move.to, "h-a-2");
  EXPECT_DOUBLE_EQ(after.last_move.downtime_ms, 12.5);
  EXPECT_EQ(after.last_move.old_public_ip, "127.100.1.2");
  EXPECT_EQ(after.last_move.new_public_ip, "127.100.2.2");
  // The claims moved: the source holds nothing of it, the target all of it.
  EXPECT_FALSE(claims("h-a-1", id));
  ASSERT_TRUE(claims("h-a-2", id));
  const Claim c = bed_.allocation("h-a-2").instances.at(id);
  EXPECT_TRUE(c.compute);
  EXPECT_EQ(c.vcpus, 1u);
  EXPECT_EQ(c.public_ip, "127.100.2.2");
  EXPECT_FALSE(bed_.driver().vm("h-a-1", id));
  ASSERT_TRUE(bed_.driver().vm("h-a-2", id));

  // The next pass points its forward at the new address, on the new host.
  bed_.heartbeat_all();
  bed_.reconciler().pass_now();
  const auto vm = bed_.driver().vm("h-a-2", id);
  ASSERT_EQ(vm->spec["forwards"].size(), 1u);
  EXPECT_EQ(vm->spec["forwards"][0]["host_address"], "127.100.2.2");
  EXPECT_EQ(bed_.driver().migrations(), 1u);
}

TEST_F(MovesTest, WithoutAHostTheSchedulerPicksAnotherHostOfTheZone) {
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  join("h-a-3", 1);
  auto asked = bed_.cloud().request_move(id, "");
  ASSERT_TRUE(asked.ok()) << asked.error().message;
  EXPECT_EQ(asked->move_to, "h-a-2");  // spread: the emptier one
  bed_.reconciler().pass_now();
  EXPECT_EQ(get(id).host, "h-a-2");
}

TEST_F(MovesTest, ATargetThatRefusesChangesNothingAndReleasesItsClaim) {
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  const InstanceRecord before = get(id);
  // The cloud thinks h-a-2 has room; its nimbusd says otherwise.
  bed_.driver().set_capacity("h-a-2", 0, 0);
  ASSERT_TRUE(bed_.cloud().request_move(id, "h-a-2").ok());
  bed_.reconciler().pass_now();
  const InstanceRecord after = get(id);
  EXPECT_EQ(after.host, "h-a-1");
  EXPECT_EQ(after.public_ip, before.public_ip);
  EXPECT_EQ(after.state, InstanceState::kRunning);
  EXPECT_TRUE(after.move_to.empty());
  EXPECT_FALSE(after.last_move.ok);
  EXPECT_EQ(after.last_move.to, "h-a-2");
  EXPECT_NE(after.last_move.error.find("not enough vCPUs"), std::string::npos)
      << after.last_move.error;
  EXPECT_TRUE(claims("h-a-1", id));
  EXPECT_FALSE(claims("h-a-2", id));  // the target's claim was released
  ASSERT_TRUE(bed_.driver().vm("h-a-1", id));
  EXPECT_EQ(bed_.driver().vm("h-a-1", id)->state, "running");
  EXPECT_FALSE(bed_.driver().vm("h-a-2", id));
  // Not tried again by itself.
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  EXPECT_EQ(count(bed_.driver().call_lines(), "POST /v1/vms/" + id + "/migrate"), 0u);

  // A source error (the migration broke off) is kept the same way.
  bed_.driver().set_capacity("h-a-2", 8, 8192);
  bed_.driver().set_migrate_error(Status::internal("migration failed: the target went away"));
  ASSERT_TRUE(bed_.cloud().request_move(id, "h-a-2").ok());
  bed_.reconciler().pass_now();
  EXPECT_EQ(get(id).host, "h-a-1");
  EXPECT_EQ(get(id).last_move.id, 2u);
  EXPECT_NE(get(id).last_move.error.find("the target went away"), std::string::npos);
  EXPECT_FALSE(claims("h-a-2", id));
}

TEST_F(MovesTest, RequestsAreCheckedAndARefusedOneChangesNothing) {
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  TestHost b;
  b.id = "h-b-1";
  b.zone = "nimbus-west-1b";
  ASSERT_TRUE(bed_.heartbeat(b).ok());
  const auto dump = bed_.store_dump();
  auto code = [&](const std::string& inst, const std::string& host) {
    auto r = bed_.cloud().request_move(inst, host);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string("ok")
                  : r.error().code + "/" + std::to_string(r.error().http_status);
  };
  EXPECT_EQ(code("i-0123456789abcdef0", "h-a-2"), "InvalidInstanceID.NotFound/404");
  EXPECT_EQ(code(id, "h-nope"), "InvalidHostId.NotFound/404");
  EXPECT_EQ(code(id, "h-a-1"), "InvalidParameterValue/400");  // where it is
  EXPECT_EQ(code(id, "h-b-1"), "InvalidParameterValue/400");  // another zone
  EXPECT_EQ(bed_.store_dump(), dump);
  ASSERT_TRUE(bed_.cloud().set_draining("h-a-2", true).ok());
  const auto dump_draining = bed_.store_dump();
  EXPECT_EQ(code(id, "h-a-2"), "InsufficientInstanceCapacity/409");
  EXPECT_EQ(code(id, ""), "InsufficientInstanceCapacity/409");
  EXPECT_EQ(bed_.store_dump(), dump_draining);
  ASSERT_TRUE(bed_.cloud().set_draining("h-a-2", false).ok());
  // A down target.
  bed_.advance(std::chrono::seconds(11));
  ASSERT_TRUE(bed_.heartbeat("h-a-1").ok());
  EXPECT_EQ(code(id, "h-a-2"), "InsufficientInstanceCapacity/409");
  ASSERT_TRUE(bed_.heartbeat("h-a-2").ok());
  // Not running.
  ASSERT_TRUE(bed_.cloud().stop_instances({id}, false).ok());
  EXPECT_EQ(code(id, "h-a-2"), "IncorrectInstanceState/409");
}

TEST_F(MovesTest, TwoMovesToOneHostNeverOversubscribeIt) {
  join("h-a-1");
  const std::string a = running();
  const std::string b = running();
  join("h-a-2", 1);  // room for one n1.tiny
  // Both asked while it has room; only one gets the claim.
  ASSERT_TRUE(bed_.cloud().request_move(a, "h-a-2").ok());
  ASSERT_TRUE(bed_.cloud().request_move(b, "h-a-2").ok());
  bed_.reconciler().pass_now();
  const InstanceRecord ra = get(a), rb = get(b);
  EXPECT_EQ((ra.host == "h-a-2") + (rb.host == "h-a-2"), 1);
  const InstanceRecord& stayed = ra.host == "h-a-2" ? rb : ra;
  EXPECT_EQ(stayed.host, "h-a-1");
  EXPECT_FALSE(stayed.last_move.ok);
  EXPECT_NE(stayed.last_move.error.find("vCPU"), std::string::npos) << stayed.last_move.error;
  EXPECT_EQ(bed_.allocation("h-a-2").instances.size(), 1u);
  EXPECT_EQ(bed_.driver().migrations(), 1u);
}

TEST_F(MovesTest, ADrainMovesEveryInstanceAndTheHostTakesNoNewOnes) {
  join("h-a-1");
  const std::string a = running();
  const std::string b = running();
  const std::string c = running();
  ASSERT_TRUE(bed_.cloud().stop_instances({c}, false).ok());
  bed_.reconciler().pass_now();
  ASSERT_EQ(get(c).state, InstanceState::kStopped);
  join("h-a-2");
  join("h-a-3");

  auto drained = bed_.cloud().drain_host("h-a-1");
  ASSERT_TRUE(drained.ok()) << drained.error().message;
  ASSERT_EQ(drained->moving.size(), 2u);
  ASSERT_EQ(drained->staying.size(), 1u);
  EXPECT_EQ(drained->staying[0].first, c);
  EXPECT_EQ(get(a).move_to, "*");
  EXPECT_TRUE(get(a).move_drain);
  // Draining: a launch goes elsewhere.
  const std::string d = running();
  EXPECT_NE(get(d).host, "h-a-1");

  bed_.reconciler().pass_now();
  for (const auto& id : {a, b}) {
    const InstanceRecord r = get(id);
    EXPECT_NE(r.host, "h-a-1") << id;
    EXPECT_TRUE(r.last_move.ok) << id;
    EXPECT_EQ(r.state, InstanceState::kRunning);
    EXPECT_FALSE(claims("h-a-1", id));
    EXPECT_TRUE(claims(r.host, id));
  }
  // Spread: one each.
  EXPECT_NE(get(a).host, get(b).host);
  // Only the stopped one stays (its disk).
  EXPECT_EQ(bed_.allocation("h-a-1").instances.size(), 1u);
  EXPECT_TRUE(claims("h-a-1", c));
  auto hosts = bed_.cloud().hosts();
  ASSERT_TRUE(hosts.ok());
  for (const auto& h : *hosts) EXPECT_EQ(h.record.draining, h.record.id == "h-a-1");

  // Undrained: it takes instances again.
  auto undrained = bed_.cloud().undrain_host("h-a-1");
  ASSERT_TRUE(undrained.ok());
  EXPECT_TRUE(undrained->empty());  // nothing was left queued
  EXPECT_EQ(bed_.cloud().drain_host("h-nope").error().code, "InvalidHostId.NotFound");
}

TEST_F(MovesTest, ARunningReconcilerMovesOneInstanceAtATimeOffEachHost) {
  join("h-a-1");
  std::vector<std::string> ids;
  for (int n = 0; n < 3; ++n) ids.push_back(running());
  join("h-a-2");
  join("h-a-3");
  bed_.driver().set_migrate_delay(std::chrono::milliseconds(150));
  Reconciler r(bed_.cloud(), bed_.driver(), CloudTestBed::kImageSource, 4);
  ASSERT_TRUE(bed_.cloud().drain_host("h-a-1").ok());
  r.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto all_moved = [&] {
    return std::all_of(ids.begin(), ids.end(), [&](const auto& id) {
      const InstanceRecord i = get(id);
      return i.host != "h-a-1" && i.move_to.empty();
    });
  };
  while (!all_moved() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  r.stop();
  EXPECT_TRUE(all_moved());
  EXPECT_EQ(bed_.driver().migrations(), 3u);
  // Four workers, three instances to move off one host: never two at once.
  EXPECT_EQ(bed_.driver().max_concurrent_migrations(), 1);
  EXPECT_TRUE(bed_.allocation("h-a-1").instances.empty());
}

TEST_F(MovesTest, DrainMovesRunOneAtATimePerHostAndUndrainCancelsTheQueuedOnes) {
  join("h-a-1");
  const std::string a = running();
  const std::string b = running();
  join("h-a-2");
  ASSERT_TRUE(bed_.cloud().drain_host("h-a-1").ok());
  // A move of another instance off h-a-1 is underway (begun: its claim taken) ...
  ASSERT_TRUE(bed_.cloud().begin_move(a).ok());
  EXPECT_EQ(get(a).move_from, "h-a-1");
  // ... so undrain cancels only b's, which had not begun.
  auto undrained = bed_.cloud().undrain_host("h-a-1");
  ASSERT_TRUE(undrained.ok());
  EXPECT_EQ(*undrained, Lines{b});
  EXPECT_TRUE(get(b).move_to.empty());
  bed_.reconciler().pass_now();
  EXPECT_EQ(get(a).host, "h-a-2");
  EXPECT_EQ(get(b).host, "h-a-1");
}

TEST_F(MovesTest, ALeaderThatDiedAfterTheMigrationIsFollowedByTheRecord) {
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  ASSERT_TRUE(bed_.cloud().request_move(id, "h-a-2").ok());
  // The leader claimed the target and told the source to migrate, then died before it
  // recorded the end: the VM is on h-a-2, the record still says h-a-1, moving.
  ASSERT_TRUE(bed_.cloud().begin_move(id).ok());
  HostRecord source;
  source.id = "h-a-1";
  source.api_url = "http://127.0.0.1:9000";
  bed_.driver().add_image("h-a-2", bed_.image_id());
  auto moved = bed_.driver().call(
      source, "POST", "/v1/vms/" + id + "/migrate",
      nlohmann::json{{"target", "http://127.0.0.1:9000"}, {"target_token", "host-token-h-a-2"}},
      1000);
  ASSERT_TRUE(moved.ok()) << moved.message();
  EXPECT_EQ(get(id).host, "h-a-1");
  EXPECT_EQ(get(id).move_from, "h-a-1");
  // The next leader (a new reconciler on the same records) finds it there and records it
  // without migrating again.
  bed_.heartbeat_all();
  Reconciler next(bed_.cloud(), bed_.driver(), CloudTestBed::kImageSource, 1);
  bed_.driver().clear_calls();
  next.pass_now();
  EXPECT_EQ(count(bed_.driver().call_lines(), "POST /v1/vms/" + id + "/migrate"), 0u);
  const InstanceRecord r = get(id);
  EXPECT_EQ(r.host, "h-a-2");
  EXPECT_TRUE(r.move_to.empty());
  EXPECT_TRUE(r.last_move.ok);
  EXPECT_FALSE(claims("h-a-1", id));
  EXPECT_TRUE(claims("h-a-2", id));
  EXPECT_EQ(bed_.driver().migrations(), 1u);
}

TEST_F(MovesTest, ALeaderThatDiedBeforeCallingTheSourceMigratesOnce) {
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  ASSERT_TRUE(bed_.cloud().request_move(id, "h-a-2").ok());
  ASSERT_TRUE(bed_.cloud().begin_move(id).ok());  // then it died
  EXPECT_TRUE(claims("h-a-2", id));
  Reconciler next(bed_.cloud(), bed_.driver(), CloudTestBed::kImageSource, 1);
  next.pass_now();
  EXPECT_EQ(get(id).host, "h-a-2");
  EXPECT_EQ(bed_.driver().migrations(), 1u);
  EXPECT_FALSE(claims("h-a-1", id));
}

TEST_F(MovesTest, AMoveWhoseSourceWentDownIsRecordedFromTheTarget) {
  join("h-a-1");
  const std::string id = running();
  const std::string waiting = running();
  join("h-a-2");
  ASSERT_TRUE(bed_.cloud().request_move(id, "h-a-2").ok());
  ASSERT_TRUE(bed_.cloud().request_move(waiting, "h-a-2").ok());
  ASSERT_TRUE(bed_.cloud().begin_move(id).ok());
  bed_.driver().add_image("h-a-2", bed_.image_id());
  HostRecord source;
  source.id = "h-a-1";
  ASSERT_TRUE(bed_.driver()
                  .call(source, "POST", "/v1/vms/" + id + "/migrate",
                        nlohmann::json{{"target", "x"}, {"target_token", "host-token-h-a-2"}}, 1000)
                  .ok());
  // Then the source stops answering and heartbeating; the target goes on.
  bed_.driver().set_unreachable("h-a-1", true);
  bed_.advance(std::chrono::seconds(11));
  ASSERT_TRUE(bed_.heartbeat("h-a-2").ok());
  ASSERT_FALSE(bed_.cloud().host_alive("h-a-1"));
  bed_.reconciler().pass_now();
  EXPECT_EQ(get(id).host, "h-a-2");
  EXPECT_TRUE(get(id).last_move.ok);
  EXPECT_FALSE(claims("h-a-1", id));
  // The move that had not begun waits for its host (nothing migrates off a dead host).
  EXPECT_EQ(get(waiting).move_to, "h-a-2");
  EXPECT_TRUE(get(waiting).move_from.empty());
  EXPECT_FALSE(claims("h-a-2", waiting));
}

TEST_F(MovesTest, ALostReplyIsResolvedByLookingAtTheTarget) {
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  bed_.driver().set_migrate_reply_lost(true);
  ASSERT_TRUE(bed_.cloud().request_move(id, "h-a-2").ok());
  bed_.reconciler().pass_now();
  EXPECT_EQ(get(id).host, "h-a-2");
  EXPECT_TRUE(get(id).last_move.ok);
  EXPECT_DOUBLE_EQ(get(id).last_move.downtime_ms, -1);  // not known
  EXPECT_FALSE(claims("h-a-1", id));
}

TEST_F(MovesTest, AVmFoundOnAnotherHostWithoutAMoveIsAdopted) {
  // A record with no move at all whose VM some other host reports running (e.g. restored
  // from an old copy of the store): the record follows the heartbeats, claims included.
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  bed_.driver().add_image("h-a-2", bed_.image_id());
  HostRecord source;
  source.id = "h-a-1";
  ASSERT_TRUE(bed_.driver()
                  .call(source, "POST", "/v1/vms/" + id + "/migrate",
                        nlohmann::json{{"target", "x"}, {"target_token", "host-token-h-a-2"}}, 1000)
                  .ok());
  bed_.heartbeat_all();
  bed_.reconciler().pass_now();
  const InstanceRecord r = get(id);
  EXPECT_EQ(r.host, "h-a-2");
  EXPECT_EQ(r.state, InstanceState::kRunning);  // not "the VM disappeared"
  EXPECT_FALSE(claims("h-a-1", id));
  ASSERT_TRUE(claims("h-a-2", id));
  EXPECT_EQ(bed_.allocation("h-a-2").instances.at(id).public_ip, r.public_ip);
}

TEST_F(MovesTest, AStopBeforeTheMoveBeganCancelsIt) {
  join("h-a-1");
  const std::string id = running();
  join("h-a-2");
  ASSERT_TRUE(bed_.cloud().request_move(id, "h-a-2").ok());
  ASSERT_TRUE(bed_.cloud().stop_instances({id}, false).ok());
  bed_.reconciler().pass_now();
  bed_.reconciler().pass_now();
  const InstanceRecord r = get(id);
  EXPECT_EQ(r.host, "h-a-1");
  EXPECT_EQ(r.state, InstanceState::kStopped);
  EXPECT_TRUE(r.move_to.empty());
  EXPECT_NE(r.last_move.error.find("cancelled"), std::string::npos);
  EXPECT_EQ(bed_.driver().migrations(), 0u);
  EXPECT_FALSE(claims("h-a-2", id));
}

TEST_F(MovesTest, TheOperatorPathsAnswerWithTheRightStatuses) {
  join("h-a-1");
  const std::string id = running();
  const std::string other = running();
  join("h-a-2");
  Ec2Api api(bed_.cloud(), bed_.driver(), {});
  auto post = [&](const std::string& path, const std::string& body, bool token = true) {
    http::Request r;
    r.method = "POST";
    r.path = path;
    r.body = body;
    if (token) r.headers = {{"authorization", std::string("Bearer ") + CloudTestBed::kJoinToken}};
    http::Reply reply = route_cloud_request(bed_.cloud(), api, r);
    return std::make_pair(reply.status, nlohmann::json::parse(reply.body, nullptr, false));
  };
  EXPECT_EQ(post("/nimbus/v1/instances/" + id + "/move", "{}", false).first, 401);
  EXPECT_EQ(post("/nimbus/v1/instances/i-0123456789abcdef0/move", "{}").first, 404);
  EXPECT_EQ(post("/nimbus/v1/instances/" + id + "/move", R"({"host": "h-zz"})").first, 404);
  EXPECT_EQ(post("/nimbus/v1/instances/" + id + "/move", R"({"host": 7})").first, 400);
  EXPECT_EQ(post("/nimbus/v1/instances/" + id + "/move", "[1]").first, 400);
  EXPECT_EQ(post("/nimbus/v1/hosts/h-zz/drain", "").first, 404);
  auto [status, body] = post("/nimbus/v1/instances/" + id + "/move", R"({"host": "h-a-2"})");
  EXPECT_EQ(status, 202);
  EXPECT_EQ(body["instance"], id);
  EXPECT_EQ(body["from"], "h-a-1");
  EXPECT_EQ(body["to"], "h-a-2");
  EXPECT_EQ(body["move_id"], 1);
  // Moving already: 409, with EC2's code.
  auto again = post("/nimbus/v1/instances/" + id + "/move", "");
  EXPECT_EQ(again.first, 409);
  EXPECT_EQ(again.second["error"]["code"], "IncorrectInstanceState");
  auto drained = post("/nimbus/v1/hosts/h-a-1/drain", "");
  EXPECT_EQ(drained.first, 202);
  // Both: `id` with the move it had, the other one to the scheduler's pick.
  ASSERT_EQ(drained.second["moving"].size(), 2u);
  for (const auto& m : drained.second["moving"])
    EXPECT_EQ(m["to"], m["instance"] == id ? "h-a-2" : "*") << m;
  auto undrained = post("/nimbus/v1/hosts/h-a-1/undrain", "");
  EXPECT_EQ(undrained.first, 200);
  EXPECT_EQ(undrained.second["cancelled"], nlohmann::json::array({other}));
  // Full: 409 InsufficientInstanceCapacity.
  bed_.reconciler().pass_now();
  ASSERT_EQ(get(id).host, "h-a-2");
  join("h-a-3", 0);
  auto full = post("/nimbus/v1/instances/" + other + "/move", R"({"host": "h-a-3"})");
  EXPECT_EQ(full.first, 409);
  EXPECT_EQ(full.second["error"]["code"], "InsufficientInstanceCapacity");
  http::Request get_req;
  get_req.method = "GET";
  get_req.path = "/nimbus/v1/hosts/h-a-1/drain";
  get_req.headers = {{"authorization", std::string("Bearer ") + CloudTestBed::kJoinToken}};
  EXPECT_EQ(route_cloud_request(bed_.cloud(), api, get_req).status, 405);
}

}  // namespace
}  // namespace nimbus::cloud
