// The reconciler against simulated hosts (fake_host_driver.h), one pass at a time.
#include "cloud/reconciler.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "cloud/cloud_test_fixture.h"

namespace nimbus::cloud {
namespace {

using Lines = std::vector<std::string>;

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcilerTest() { host_ = bed_.add_hosts(1, {}, {"nimbus-west-1a"}).at(0); }

  InstanceRecord get(const std::string& id) {
    auto i = bed_.cloud().instance(id);
    EXPECT_TRUE(i.ok()) << id;
    return i.ok() ? *i : InstanceRecord{};
  }
  std::string run(const std::string& type = "n1.tiny") {
    auto r = bed_.cloud().run_instances(bed_.run_request(type));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? r->instances.at(0).id : "";
  }
  // Passes until the instance is in `state` (at most `passes`).
  bool pass_until(const std::string& id, InstanceState state, int passes = 5) {
    for (int n = 0; n < passes; ++n) {
      bed_.reconciler().pass_now();
      if (get(id).state == state) return true;
    }
    return false;
  }
  std::string running(const std::string& type = "n1.tiny") {
    const std::string id = run(type);
    EXPECT_TRUE(pass_until(id, InstanceState::kRunning));
    return id;
  }
  bool called(const std::string& line) {
    const Lines l = bed_.driver().call_lines(host_);
    return std::find(l.begin(), l.end(), line) != l.end();
  }

  CloudTestBed bed_;
  std::string host_;
};

TEST_F(ReconcilerTest, PendingFetchesTheImageCreatesTheVmAndRunsOnlyOnceReady) {
  bed_.driver().set_ready_after(2);
  const std::string id = run();
  ASSERT_FALSE(bed_.driver().has_image(host_, bed_.image_id()));
  bed_.reconciler().pass_now();
  // The image first (the host lacks it), then the VM.
  EXPECT_EQ(bed_.driver().call_lines(host_),
            (Lines{"GET /v1/vms/" + id, "GET /v1/images", "POST /v1/images", "POST /v1/vms"}));
  auto calls = bed_.driver().calls();
  const auto& fetch = *calls[2].body;
  EXPECT_EQ(fetch["name"], bed_.image_id());
  EXPECT_EQ(fetch["source"], std::string(CloudTestBed::kImageSource) + bed_.image_id() + "/");
  ASSERT_EQ(fetch["files"].size(), 2u);
  EXPECT_EQ(fetch["files"][0]["sha256"], bed_.image().files[0].sha256);
  const auto& create = *calls[3].body;
  EXPECT_EQ(create["name"], id);
  EXPECT_EQ(create["image"], bed_.image_id());
  EXPECT_EQ(create["cpus"], 1);
  EXPECT_EQ(create["memory_mib"], 128);
  EXPECT_EQ(create["disk_mib"], bed_.image().disk_mib);
  EXPECT_EQ(get(id).state, InstanceState::kPending);

  // Starting: still pending.
  bed_.reconciler().pass_now();
  EXPECT_EQ(get(id).state, InstanceState::kPending);
  EXPECT_EQ(get(id).vm_state, "starting");
  // Ready: running, with its subnet's address from the launch (not the host's 10.88.x.y).
  bed_.reconciler().pass_now();
  InstanceRecord i = get(id);
  EXPECT_EQ(i.state, InstanceState::kRunning);
  EXPECT_TRUE(i.vm_ready);
  EXPECT_EQ(i.private_ip, "172.31.0.4");

  // A second instance of the same image: no second fetch.
  bed_.driver().clear_calls();
  const std::string id2 = run();
  bed_.reconciler().pass_now();
  EXPECT_FALSE(called("POST /v1/images"));
  EXPECT_TRUE(called("POST /v1/vms"));
  EXPECT_TRUE(bed_.driver().vm(host_, id2).has_value());
}

TEST_F(ReconcilerTest, StopReleasesComputeAndStartResizesWhenTheTypeChanged) {
  const std::string id = running("n1.tiny");
  ASSERT_TRUE(bed_.cloud().stop_instances({id}, false).ok());
  EXPECT_TRUE(bed_.allocation(host_).instances.at(id).compute);  // until the host confirms
  bed_.reconciler().pass_now();
  EXPECT_TRUE(called("POST /v1/vms/" + id + "/stop"));
  InstanceRecord i = get(id);
  EXPECT_EQ(i.state, InstanceState::kStopped);
  EXPECT_EQ(i.state_reason_code, "Client.UserInitiatedShutdown");
  EXPECT_FALSE(bed_.allocation(host_).instances.at(id).compute);
  EXPECT_EQ(bed_.driver().vm(host_, id)->state, "stopped");
  // Nothing more to do for a stopped instance.
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  EXPECT_TRUE(bed_.driver().call_lines(host_).empty());

  ASSERT_TRUE(bed_.cloud().modify_instance_type(id, "n1.medium").ok());
  ASSERT_TRUE(bed_.cloud().start_instances({id}).ok());
  EXPECT_TRUE(bed_.allocation(host_).instances.at(id).compute);
  EXPECT_EQ(bed_.allocation(host_).instances.at(id).vcpus, 2u);
  ASSERT_TRUE(pass_until(id, InstanceState::kRunning));
  const Lines lines = bed_.driver().call_lines(host_);
  auto resize = std::find(lines.begin(), lines.end(), "POST /v1/vms/" + id + "/resize");
  auto start = std::find(lines.begin(), lines.end(), "POST /v1/vms/" + id + "/start");
  ASSERT_NE(resize, lines.end());
  ASSERT_NE(start, lines.end());
  EXPECT_LT(resize, start);
  auto vm = bed_.driver().vm(host_, id);
  EXPECT_EQ(vm->spec["cpus"], 2);
  EXPECT_EQ(vm->spec["memory_mib"], 512);
  EXPECT_EQ(vm->state, "running");

  // Started again without a type change: no resize.
  ASSERT_TRUE(bed_.cloud().stop_instances({id}, true).ok());
  ASSERT_TRUE(pass_until(id, InstanceState::kStopped));
  auto calls = bed_.driver().calls();
  EXPECT_EQ(calls.back().path, "/v1/vms/" + id + "/stop");
  EXPECT_EQ((*calls.back().body)["force"], true);
  bed_.driver().clear_calls();
  ASSERT_TRUE(bed_.cloud().start_instances({id}).ok());
  ASSERT_TRUE(pass_until(id, InstanceState::kRunning));
  EXPECT_FALSE(called("POST /v1/vms/" + id + "/resize"));
}

TEST_F(ReconcilerTest, TerminateDeletesTheVmAndReleasesTheClaim) {
  const std::string id = running();
  ASSERT_TRUE(bed_.cloud().terminate_instances({id}).ok());
  EXPECT_EQ(get(id).state, InstanceState::kShuttingDown);
  bed_.reconciler().pass_now();
  EXPECT_TRUE(called("DELETE /v1/vms/" + id));
  EXPECT_FALSE(bed_.driver().vm(host_, id).has_value());
  EXPECT_EQ(get(id).state, InstanceState::kTerminated);
  EXPECT_GT(get(id).terminated_at_ms, 0);
  EXPECT_EQ(bed_.allocation(host_).instances.count(id), 0u);
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  EXPECT_TRUE(bed_.driver().call_lines(host_).empty());  // terminated: left alone
}

TEST_F(ReconcilerTest, AGuestPoweringOffStopsTheInstance) {
  const std::string id = running();
  bed_.driver().power_off(host_, id);
  bed_.reconciler().pass_now();
  InstanceRecord i = get(id);
  EXPECT_EQ(i.state, InstanceState::kStopped);
  EXPECT_EQ(i.desired, Desired::kStopped);
  EXPECT_EQ(i.state_reason_code, "Client.InstanceInitiatedShutdown");
  EXPECT_FALSE(bed_.allocation(host_).instances.at(id).compute);
  // It stays stopped: the reconciler does not start it again by itself.
  bed_.reconciler().pass_now();
  EXPECT_EQ(bed_.driver().vm(host_, id)->state, "stopped");

  const std::string id2 = running();
  bed_.driver().power_off(host_, id2, /*crashed=*/true);
  bed_.reconciler().pass_now();
  i = get(id2);
  EXPECT_EQ(i.state, InstanceState::kStopped);
  EXPECT_EQ(i.state_reason_code, "Server.InternalError");
  EXPECT_NE(i.state_reason_message.find("signal 9"), std::string::npos);
}

TEST_F(ReconcilerTest, AVmThatKeepsCrashingBeforeReadyFailsTheLaunch) {
  bed_.driver().set_ready_after(1000);  // never ready
  const std::string id = run();
  bed_.reconciler().pass_now();  // created, starting
  for (int n = 0; n < 3; ++n) {
    bed_.driver().power_off(host_, id, /*crashed=*/true);
    bed_.reconciler().pass_now();  // started again
    EXPECT_EQ(get(id).state, InstanceState::kPending) << n;
  }
  bed_.driver().power_off(host_, id, /*crashed=*/true);
  bed_.reconciler().pass_now();  // the fourth time: the launch fails
  const InstanceRecord i = get(id);
  EXPECT_EQ(i.state, InstanceState::kStopped);
  EXPECT_EQ(i.state_reason_code, "Server.InternalError");
  EXPECT_FALSE(bed_.allocation(host_).instances.at(id).compute);
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  EXPECT_FALSE(called("POST /v1/vms/" + id + "/start"));
}

TEST_F(ReconcilerTest, ForwardsFollowTheSecurityGroupRules) {
  const std::string id = running();
  const std::string sg = get(id).security_groups.at(0);  // the default group
  const std::string ip = get(id).public_ip;
  EXPECT_TRUE(bed_.driver().vm(host_, id)->spec["forwards"].empty());
  SecurityRule ssh{"tcp", 22, 22, {"0.0.0.0/0"}, {}};
  ASSERT_TRUE(bed_.cloud().change_ingress(sg, "", {ssh}, true).ok());
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  EXPECT_TRUE(called("PUT /v1/vms/" + id + "/forwards"));
  auto fwd = bed_.driver().vm(host_, id)->spec["forwards"];
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0]["host_address"], ip);
  EXPECT_EQ(fwd[0]["host_port"], 22);
  EXPECT_EQ(fwd[0]["guest_port"], 22);
  EXPECT_EQ(fwd[0]["protocol"], "tcp");
  // In place: a further pass changes nothing.
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  EXPECT_FALSE(called("PUT /v1/vms/" + id + "/forwards"));

  ASSERT_TRUE(bed_.cloud().change_ingress(sg, "", {ssh}, false).ok());
  bed_.reconciler().pass_now();
  EXPECT_TRUE(bed_.driver().vm(host_, id)->spec["forwards"].empty());

  // A new instance gets the group's forwards at creation.
  ASSERT_TRUE(bed_.cloud().change_ingress(sg, "", {ssh}, true).ok());
  const std::string id2 = run();
  bed_.reconciler().pass_now();
  auto calls = bed_.driver().calls();
  auto create = std::find_if(calls.begin(), calls.end(), [&](const auto& c) {
    return c.method == "POST" && c.path == "/v1/vms" && (*c.body)["name"] == id2;
  });
  ASSERT_NE(create, calls.end());
  ASSERT_EQ((*create->body)["forwards"].size(), 1u);
  EXPECT_EQ((*create->body)["forwards"][0]["host_address"], get(id2).public_ip);
}

TEST_F(ReconcilerTest, AHostRefusingForCapacityTerminatesTheLaunch) {
  bed_.driver().set_capacity(host_, 0, 0);  // the cloud thinks it fits; the host says no
  const std::string id = run();
  ASSERT_EQ(bed_.allocation(host_).instances.count(id), 1u);
  bed_.reconciler().pass_now();
  InstanceRecord i = get(id);
  EXPECT_EQ(i.state, InstanceState::kTerminated);
  EXPECT_EQ(i.state_reason_code, "Server.InsufficientInstanceCapacity");
  EXPECT_NE(i.state_reason_message.find("not enough vCPUs"), std::string::npos)
      << i.state_reason_message;
  EXPECT_EQ(bed_.allocation(host_).instances.count(id), 0u);
  EXPECT_FALSE(bed_.driver().vm(host_, id).has_value());
}

TEST_F(ReconcilerTest, AnUnreachableHostChangesNothingAndIsRetried) {
  const std::string id = run();
  bed_.driver().set_unreachable(host_, true);
  const auto before = bed_.store_dump();
  bed_.reconciler().pass_now();
  bed_.reconciler().pass_now();
  EXPECT_EQ(bed_.store_dump(), before);
  EXPECT_EQ(get(id).state, InstanceState::kPending);
  EXPECT_EQ(bed_.driver().call_lines(host_).size(), 2u);  // one attempt per pass

  bed_.driver().set_unreachable(host_, false);
  ASSERT_TRUE(pass_until(id, InstanceState::kRunning));

  // The same for a stop: stopping until the host answers.
  ASSERT_TRUE(bed_.cloud().stop_instances({id}, false).ok());
  bed_.driver().set_unreachable(host_, true);
  const auto stopping = bed_.store_dump();
  bed_.reconciler().pass_now();
  EXPECT_EQ(bed_.store_dump(), stopping);
  EXPECT_EQ(get(id).state, InstanceState::kStopping);
  EXPECT_TRUE(bed_.allocation(host_).instances.at(id).compute);
  bed_.driver().set_unreachable(host_, false);
  ASSERT_TRUE(pass_until(id, InstanceState::kStopped));
}

TEST_F(ReconcilerTest, AHostThatStoppedHeartbeatingIsLeftAlone) {
  const std::string id = run();
  bed_.advance(std::chrono::seconds(11));
  bed_.reconciler().pass_now();
  EXPECT_TRUE(bed_.driver().call_lines(host_).empty());
  EXPECT_EQ(get(id).state, InstanceState::kPending);
  ASSERT_TRUE(bed_.heartbeat(host_).ok());
  ASSERT_TRUE(pass_until(id, InstanceState::kRunning));
}

TEST_F(ReconcilerTest, RebootRestartsTheVmOnce) {
  const std::string id = running();
  ASSERT_TRUE(bed_.cloud().reboot_instances({id}).ok());
  bed_.reconciler().pass_now();
  bed_.reconciler().pass_now();
  const Lines lines = bed_.driver().call_lines(host_);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "POST /v1/vms/" + id + "/restart"), 1);
  EXPECT_EQ(bed_.driver().vm(host_, id)->restarts, 1u);
  EXPECT_EQ(get(id).reboots_done, 1u);
  EXPECT_EQ(get(id).state, InstanceState::kRunning);
}

TEST_F(ReconcilerTest, TheVmGetsItsMetadataWithItsPrivateAddressAndItsMacOnceKnown) {
  bed_.driver().set_ready_after(2);
  RunRequest req = bed_.run_request();
  req.user_data = "IyEvYmluL3NoCmVjaG8gaGkK";  // "#!/bin/sh\necho hi\n"
  auto run = bed_.cloud().run_instances(req);
  ASSERT_TRUE(run.ok());
  const std::string id = run->instances.at(0).id;
  bed_.reconciler().pass_now();
  // The create carries the metadata: identity, user data, the private address (from the
  // launch); the MAC is not known yet.
  std::optional<nlohmann::json> create;
  for (const auto& c : bed_.driver().calls()) {
    if (c.method == "POST" && c.path == "/v1/vms") create = c.body;
  }
  ASSERT_TRUE(create.has_value());
  const auto& m = (*create)["metadata"];
  EXPECT_EQ(m["data"]["meta-data"]["instance-id"], id);
  EXPECT_EQ(m["data"]["user-data"], req.user_data);
  EXPECT_EQ(m["data"]["meta-data"]["local-ipv4"], run->instances.at(0).private_ip);
  EXPECT_FALSE(m["data"]["meta-data"].contains("mac"));
  EXPECT_EQ(m["http_tokens"], "optional");
  EXPECT_EQ(m["http_endpoint"], "enabled");
  EXPECT_EQ(m["hop_limit"], 1);

  // The VM reports its MAC: the data is sent again, once.
  ASSERT_TRUE(pass_until(id, InstanceState::kRunning));
  for (int n = 0; n < 3; ++n) bed_.reconciler().pass_now();
  const Lines l = bed_.driver().call_lines(host_);
  EXPECT_EQ(std::count(l.begin(), l.end(), "PUT /v1/vms/" + id + "/metadata"), 1);
  auto vm = bed_.driver().vm(host_, id);
  ASSERT_TRUE(vm.has_value());
  const auto& md = vm->metadata["data"]["meta-data"];
  EXPECT_EQ(md["local-ipv4"], "172.31.0.4");
  EXPECT_EQ(md["local-ipv4"], get(id).private_ip);
  EXPECT_EQ(md["mac"], "52:54:00:81:00:02");
  EXPECT_EQ(md["instance-id"], id);
  EXPECT_EQ(vm->metadata["data"]["user-data"], req.user_data);
  const auto doc = nlohmann::json::parse(
      vm->metadata["data"]["dynamic"]["instance-identity"]["document"].get<std::string>());
  EXPECT_EQ(doc["privateIp"], "172.31.0.4");
  EXPECT_EQ(vm->metadata["http_tokens"], "optional") << "the options stay";
  EXPECT_FALSE(get(id).metadata_hash.empty());

  // A record whose metadata was never sent (an instance older than this) is sent it.
  ASSERT_TRUE(bed_.cloud()
                  .update_instance(id,
                                   [](InstanceRecord& r) {
                                     r.metadata_hash.clear();
                                     return true;
                                   })
                  .ok());
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  bed_.reconciler().pass_now();
  const Lines again = bed_.driver().call_lines(host_);
  EXPECT_EQ(std::count(again.begin(), again.end(), "PUT /v1/vms/" + id + "/metadata"), 1);
}

TEST_F(ReconcilerTest, MetadataOptionsReachTheVmAndShowAppliedOnlyThen) {
  RunRequest req = bed_.run_request();
  req.metadata_options.http_tokens = "required";
  req.metadata_options.http_put_response_hop_limit = 3;
  auto run = bed_.cloud().run_instances(req);
  ASSERT_TRUE(run.ok());
  const std::string id = run->instances.at(0).id;
  EXPECT_FALSE(get(id).metadata_options_applied) << "no VM yet";
  bed_.reconciler().pass_now();
  // The create carries them.
  std::optional<nlohmann::json> create;
  for (const auto& c : bed_.driver().calls()) {
    if (c.method == "POST" && c.path == "/v1/vms") create = c.body;
  }
  ASSERT_TRUE(create.has_value());
  EXPECT_EQ((*create)["metadata"]["http_tokens"], "required");
  EXPECT_EQ((*create)["metadata"]["hop_limit"], 3);
  ASSERT_TRUE(pass_until(id, InstanceState::kRunning));
  EXPECT_TRUE(get(id).metadata_options_applied);

  // Changed on a running instance: pending until sent, then applied; sent once.
  MetadataOptionsChange change;
  change.http_tokens = "optional";
  change.http_endpoint = "disabled";
  auto m = bed_.cloud().modify_instance_metadata_options(id, change);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_FALSE(m->metadata_options_applied);
  EXPECT_EQ(m->metadata_options.http_tokens, "optional");
  EXPECT_EQ(m->metadata_options.http_endpoint, "disabled");
  EXPECT_EQ(m->metadata_options.http_put_response_hop_limit, 3u) << "not given: kept";
  bed_.driver().clear_calls();
  for (int n = 0; n < 3; ++n) bed_.reconciler().pass_now();
  Lines l = bed_.driver().call_lines(host_);
  EXPECT_EQ(std::count(l.begin(), l.end(), "PUT /v1/vms/" + id + "/metadata"), 1);
  auto vm = bed_.driver().vm(host_, id);
  ASSERT_TRUE(vm.has_value());
  EXPECT_EQ(vm->metadata["http_tokens"], "optional");
  EXPECT_EQ(vm->metadata["http_endpoint"], "disabled");
  EXPECT_EQ(vm->metadata["hop_limit"], 3);
  EXPECT_EQ(vm->metadata["data"]["meta-data"]["instance-id"], id) << "the data stays";
  EXPECT_TRUE(get(id).metadata_options_applied);

  // The same options again: nothing to do, still applied.
  m = bed_.cloud().modify_instance_metadata_options(id, change);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->metadata_options_applied);

  // A host that cannot be reached: pending, and retried once it is back.
  change.http_endpoint = "enabled";
  ASSERT_TRUE(bed_.cloud().modify_instance_metadata_options(id, change).ok());
  bed_.driver().set_unreachable(host_, true);
  bed_.reconciler().pass_now();
  EXPECT_FALSE(get(id).metadata_options_applied);
  bed_.driver().set_unreachable(host_, false);
  bed_.heartbeat_all();  // its VM in the host's report: only the options are left to do
  bed_.reconciler().pass_now();
  EXPECT_TRUE(get(id).metadata_options_applied);
  EXPECT_EQ(bed_.driver().vm(host_, id)->metadata["http_endpoint"], "enabled");
}

TEST_F(ReconcilerTest, MetadataOptionsOfAStoppedInstanceGoToItsVmBeforeItStarts) {
  const std::string id = running();
  ASSERT_TRUE(bed_.cloud().stop_instances({id}, false).ok());
  ASSERT_TRUE(pass_until(id, InstanceState::kStopped));
  MetadataOptionsChange change;
  change.http_tokens = "required";
  ASSERT_TRUE(bed_.cloud().modify_instance_metadata_options(id, change).ok());
  EXPECT_FALSE(get(id).metadata_options_applied);
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  EXPECT_TRUE(called("PUT /v1/vms/" + id + "/metadata"));
  EXPECT_EQ(bed_.driver().vm(host_, id)->metadata["http_tokens"], "required");
  EXPECT_EQ(bed_.driver().vm(host_, id)->state, "stopped") << "not started by it";
  InstanceRecord i = get(id);
  EXPECT_TRUE(i.metadata_options_applied);
  EXPECT_EQ(i.state, InstanceState::kStopped);
  // Nothing more for it while stopped.
  bed_.driver().clear_calls();
  bed_.reconciler().pass_now();
  EXPECT_TRUE(bed_.driver().call_lines(host_).empty());

  // Terminated: refused, as EC2 does.
  ASSERT_TRUE(bed_.cloud().terminate_instances({id}).ok());
  auto r = bed_.cloud().modify_instance_metadata_options(id, change);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "IncorrectInstanceState");
}

TEST_F(ReconcilerTest, WithMetadataTagsEnabledNewTagsAreSentAgain) {
  RunRequest req = bed_.run_request();
  req.metadata_options.instance_metadata_tags = "enabled";
  req.instance_tags = {{"Name", "web"}};
  auto run = bed_.cloud().run_instances(req);
  ASSERT_TRUE(run.ok());
  const std::string id = run->instances.at(0).id;
  ASSERT_TRUE(pass_until(id, InstanceState::kRunning));
  bed_.reconciler().pass_now();
  auto vm = bed_.driver().vm(host_, id);
  EXPECT_EQ(vm->metadata["data"]["meta-data"]["tags"]["instance"],
            nlohmann::json({{"Name", "web"}}));
  ASSERT_TRUE(bed_.cloud().create_tags({id}, {{"Env", "prod"}}).ok());
  bed_.reconciler().pass_now();
  vm = bed_.driver().vm(host_, id);
  EXPECT_EQ(vm->metadata["data"]["meta-data"]["tags"]["instance"],
            nlohmann::json({{"Env", "prod"}, {"Name", "web"}}));
}

}  // namespace
}  // namespace nimbus::cloud
