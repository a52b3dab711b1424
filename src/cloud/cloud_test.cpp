// The control plane's operations over a real (in-memory) store: placement and claims,
// idempotency, host liveness, state rules, security groups, placement groups and tags.
#include "cloud/cloud.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "cloud/cloud_test_fixture.h"

namespace nimbus::cloud {
namespace {

using namespace std::chrono_literals;

std::set<std::string> hosts_of(const Reservation& r) {
  std::set<std::string> out;
  for (const auto& i : r.instances) out.insert(i.host);
  return out;
}

// A few reconciler passes: enough for any one change to reach the hosts and come back.
void settle(CloudTestBed& bed) {
  for (int n = 0; n < 3; ++n) bed.reconciler().pass_now();
}

// Runs one instance and drives it to running with the reconciler.
InstanceRecord launch(CloudTestBed& bed, RunRequest req) {
  auto r = bed.cloud().run_instances(req);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().message);
  if (!r.ok()) return {};
  settle(bed);
  auto i = bed.cloud().instance(r->instances.at(0).id);
  EXPECT_TRUE(i.ok());
  EXPECT_EQ(i->state, InstanceState::kRunning);
  return *i;
}

InstanceState state_of(CloudTestBed& bed, const std::string& id) {
  auto i = bed.cloud().instance(id);
  EXPECT_TRUE(i.ok()) << id;
  return i.ok() ? i->state : InstanceState::kPending;
}

TEST(CloudRun, SpreadPutsThreeOnThreeHostsPackOnOne) {
  {
    CloudTestBed bed;
    bed.add_hosts(3, {}, {"nimbus-west-1a"});
    auto r = bed.cloud().run_instances(bed.run_request("n1.tiny", 3));
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->instances.size(), 3u);
    EXPECT_EQ(hosts_of(*r).size(), 3u);
    std::set<std::string> ids, ips;
    for (const auto& i : r->instances) {
      EXPECT_TRUE(is_id(i.id, "i"));
      EXPECT_EQ(i.reservation_id, r->id);
      EXPECT_EQ(i.state, InstanceState::kPending);
      EXPECT_EQ(i.zone, "nimbus-west-1a");
      ids.insert(i.id);
      ips.insert(i.public_ip);
      EXPECT_EQ(bed.allocation(i.host).instances.count(i.id), 1u);
    }
    EXPECT_EQ(ids.size(), 3u);
    EXPECT_EQ(ips.size(), 3u);
  }
  {
    CloudOptions o = CloudTestBed::default_options();
    o.strategy = Strategy::kPack;
    CloudTestBed bed(o);
    bed.add_hosts(3, {}, {"nimbus-west-1a"});
    auto r = bed.cloud().run_instances(bed.run_request("n1.tiny", 3));
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->instances.size(), 3u);
    EXPECT_EQ(hosts_of(*r).size(), 1u);
    const std::string host = r->instances[0].host;
    EXPECT_EQ(bed.allocation(host).instances.size(), 3u);
    // Three addresses of the one host's pool.
    std::set<std::string> ips;
    for (const auto& i : r->instances) ips.insert(i.public_ip);
    EXPECT_EQ(ips.size(), 3u);
  }
}

TEST(CloudRun, ZoneIsHonoured) {
  CloudTestBed bed;
  bed.add_hosts(2);
  RunRequest req = bed.run_request("n1.tiny", 4);
  req.zone = "nimbus-west-1b";
  auto r = bed.cloud().run_instances(req);
  ASSERT_TRUE(r.ok()) << r.error().message;
  for (const auto& i : r->instances) {
    EXPECT_EQ(i.zone, "nimbus-west-1b");
    EXPECT_TRUE(i.host == "h-b-1" || i.host == "h-b-2") << i.host;
  }
  req.zone = "nimbus-west-1z";
  auto bad = bed.cloud().run_instances(req);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "InvalidParameterValue");
}

TEST(CloudRun, UnknownTypeAndImageAreRefused) {
  CloudTestBed bed;
  bed.add_hosts(1);
  const auto before = bed.store_dump();
  RunRequest req = bed.run_request("x9.huge");
  auto r = bed.cloud().run_instances(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InvalidParameterValue");
  EXPECT_NE(r.error().message.find("x9.huge"), std::string::npos);
  req = bed.run_request();
  req.image_id = "ami-0123456789abcdef0";
  r = bed.cloud().run_instances(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InvalidAMIID.NotFound");
  req.image_id = "ami-nothex";
  r = bed.cloud().run_instances(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InvalidAMIID.Malformed");
  EXPECT_EQ(bed.store_dump(), before);
}

TEST(CloudRun, InsufficientCapacitySaysWhatIsShortAndChangesNothing) {
  CloudTestBed bed;
  TestHost small;
  small.cpus = 2;
  small.memory_mib = 4096;
  bed.add_hosts(1, small, {"nimbus-west-1a"});
  const auto before = bed.store_dump();
  auto r = bed.cloud().run_instances(bed.run_request("t3.xlarge"));  // 4 vCPUs, 16 GiB
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InsufficientInstanceCapacity");
  EXPECT_NE(r.error().message.find("t3.xlarge"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("vCPUs"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("memory"), std::string::npos) << r.error().message;
  EXPECT_EQ(bed.store_dump(), before);

  // Two fit (2 vCPUs of n1.tiny's 1 each); asking for exactly 3 places none.
  r = bed.cloud().run_instances(bed.run_request("n1.tiny", 3));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InsufficientInstanceCapacity");
  EXPECT_EQ(bed.store_dump(), before);
  auto all = bed.cloud().instances();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST(CloudRun, MinCountMaxCountPlacesWhatFits) {
  CloudTestBed bed;
  TestHost small;
  small.cpus = 3;
  bed.add_hosts(1, small, {"nimbus-west-1a"});
  RunRequest req = bed.run_request("n1.tiny");
  req.min_count = 2;
  req.max_count = 5;
  auto r = bed.cloud().run_instances(req);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->instances.size(), 3u);
  for (unsigned n = 0; n < 3; ++n) EXPECT_EQ(r->instances[n].launch_index, n);
  // Nothing left: even one is refused.
  r = bed.cloud().run_instances(bed.run_request("n1.tiny"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InsufficientInstanceCapacity");

  req.min_count = 3;
  req.max_count = 2;
  r = bed.cloud().run_instances(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InvalidParameterValue");
}

TEST(CloudRun, ConcurrentLaunchesNeverOvercommitAHost) {
  CloudTestBed bed;
  TestHost h;
  h.cpus = 3;
  h.memory_mib = 100000;
  bed.add_hosts(1, h);  // 3 hosts of 3 vCPUs: 9 n1.tiny fit
  constexpr int kThreads = 20;
  std::atomic<int> placed{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto r = bed.cloud().run_instances(bed.run_request("n1.tiny"));
      if (r.ok()) {
        placed += static_cast<int>(r->instances.size());
      } else if (r.error().code == "InsufficientInstanceCapacity") {
        refused += 1;
      } else {
        other += 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(placed.load(), 9);
  EXPECT_EQ(refused.load(), kThreads - 9);
  EXPECT_EQ(other.load(), 0);
  auto all = bed.cloud().instances();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 9u);
  std::map<std::string, unsigned> per_host;
  for (const auto& i : *all) ++per_host[i.host];
  for (const std::string host : {"h-a-1", "h-b-1", "h-c-1"}) {
    unsigned vcpus = 0;
    for (const auto& [id, c] : bed.allocation(host).instances) vcpus += c.vcpus;
    EXPECT_LE(vcpus, 3u) << host;
    EXPECT_EQ(per_host[host], bed.allocation(host).instances.size()) << host;
  }
}

// A store on which every launch that claims on host `host` or takes address `address`
// loses its race (its txn fails, as when another launch committed first): as launches that
// read the same view and all chose the same best host and lowest address.
class ContendedStore final : public Store {
 public:
  explicit ContendedStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}
  void contend(std::string alloc_key, std::string address_suffix) {
    std::lock_guard lock(mu_);
    alloc_key_ = std::move(alloc_key);
    address_suffix_ = std::move(address_suffix);
  }
  int lost() const { return lost_.load(); }
  Result<std::optional<KeyValue>> get(const std::string& key) override { return inner_->get(key); }
  Result<std::vector<KeyValue>> list(const std::string& prefix) override {
    return inner_->list(prefix);
  }
  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) override {
    {
      std::lock_guard lock(mu_);
      for (const Op& op : ops) {
        const bool address = !address_suffix_.empty() && op.key.rfind(kAddressesPrefix, 0) == 0 &&
                             op.key.size() > address_suffix_.size() &&
                             op.key.compare(op.key.size() - address_suffix_.size(),
                                            address_suffix_.size(), address_suffix_) == 0;
        if ((!alloc_key_.empty() && op.key == alloc_key_) || address) {
          ++lost_;
          return TxnResult{false, 0};
        }
      }
    }
    return inner_->txn(compares, ops);
  }
  std::string describe() const override { return "contended:" + inner_->describe(); }

 private:
  std::unique_ptr<Store> inner_;
  std::mutex mu_;
  std::string alloc_key_, address_suffix_;
  std::atomic<int> lost_{0};
};

// Before: a retry chose the same best host again, so a launch racing others on one view
// kept colliding (40 attempts, then InsufficientInstanceCapacity). Now a retry chooses
// among the best few hosts at random.
TEST(CloudRun, ALaunchThatLostARaceTriesOtherEqualHosts) {
  ContendedStore* contended = nullptr;
  CloudTestBed bed(CloudTestBed::default_options(), [&](std::unique_ptr<Store> inner) {
    auto s = std::make_unique<ContendedStore>(std::move(inner));
    contended = s.get();
    return std::unique_ptr<Store>(std::move(s));
  });
  const std::string zone = bed.cloud().zones().front();
  bed.add_hosts(4, {}, {zone});  // four equal hosts: h-a-1 is the deterministic first choice
  auto subnets = bed.cloud().subnets();
  ASSERT_TRUE(subnets.ok());
  std::optional<Ipv4Cidr> cidr;
  for (const auto& s : *subnets) {
    if (s.default_for_az && s.zone == zone) cidr = parse_cidr(s.cidr_block);
  }
  ASSERT_TRUE(cidr);
  contended->contend(std::string(kAllocPrefix) + "h-a-1", "");
  RunRequest req = bed.run_request("n1.tiny");
  req.zone = zone;
  for (int n = 0; n < 3; ++n) {
    auto r = bed.cloud().run_instances(req);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->instances.size(), 1u);
    EXPECT_NE(r->instances[0].host, "h-a-1");
    // Addresses stay the lowest free ones (no gaps).
    EXPECT_EQ(r->instances[0].private_ip, format_ipv4(cidr->base + 4 + n));
  }
  EXPECT_GE(contended->lost(), 3);  // each launch did lose its first attempt
  EXPECT_TRUE(bed.allocation("h-a-1").instances.empty());
  // Concurrent launches on the same hosts (no contention injected) all succeed, with
  // distinct addresses, every instance claimed on its host.
  contended->contend("", "");
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int k = 0; k < 3; ++k) {
        if (!bed.cloud().run_instances(req).ok()) ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  auto all = bed.cloud().instances();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 27u);
  std::set<std::string> addresses;
  size_t claimed = 0;
  for (const auto& i : *all) addresses.insert(i.private_ip);
  for (int n = 1; n <= 4; ++n) claimed += bed.allocation(fmt::format("h-a-{}", n)).instances.size();
  EXPECT_EQ(addresses.size(), 27u);
  EXPECT_EQ(claimed, 27u);
}

TEST(CloudRun, ClientTokenReplaysTheReservation) {
  CloudTestBed bed;
  bed.add_hosts(1);
  RunRequest req = bed.run_request("n1.tiny", 2);
  req.client_token = "token-1";
  auto first = bed.cloud().run_instances(req);
  ASSERT_TRUE(first.ok()) << first.error().message;
  const auto after_first = bed.store_dump();
  auto again = bed.cloud().run_instances(req);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->id, first->id);
  ASSERT_EQ(again->instances.size(), 2u);
  EXPECT_EQ(again->instances[0].id, first->instances[0].id);
  EXPECT_EQ(again->instances[1].id, first->instances[1].id);
  EXPECT_EQ(bed.store_dump(), after_first);

  RunRequest different = req;
  different.instance_type = "n1.small";
  auto mismatch = bed.cloud().run_instances(different);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.error().code, "IdempotentParameterMismatch");
  EXPECT_EQ(bed.store_dump(), after_first);

  // Concurrent retries of one token make one reservation.
  RunRequest other = bed.run_request("n1.tiny");
  other.client_token = "token-2";
  std::vector<std::string> seen(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto r = bed.cloud().run_instances(other);
      if (r.ok()) seen[t] = r->id;
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : seen) EXPECT_EQ(s, seen[0]);
  auto all = bed.cloud().instances();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
}

TEST(CloudHosts, AHostThatStopsHeartbeatingTakesNoNewInstances) {
  CloudTestBed bed;
  bed.add_hosts(2, {}, {"nimbus-west-1a"});
  // h-a-2 goes quiet; h-a-1 keeps reporting.
  bed.advance(6s);
  ASSERT_TRUE(bed.heartbeat("h-a-1").ok());
  bed.advance(6s);
  ASSERT_TRUE(bed.heartbeat("h-a-1").ok());
  EXPECT_TRUE(bed.cloud().host_alive("h-a-1"));
  EXPECT_FALSE(bed.cloud().host_alive("h-a-2"));
  auto r = bed.cloud().run_instances(bed.run_request("n1.tiny", 4));
  ASSERT_TRUE(r.ok()) << r.error().message;
  for (const auto& i : r->instances) EXPECT_EQ(i.host, "h-a-1");
  EXPECT_TRUE(bed.allocation("h-a-2").instances.empty());

  bed.advance(11s);  // now both are quiet
  r = bed.cloud().run_instances(bed.run_request("n1.tiny"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InsufficientInstanceCapacity");
  EXPECT_NE(r.error().message.find("down"), std::string::npos) << r.error().message;

  ASSERT_TRUE(bed.heartbeat("h-a-2").ok());  // back
  r = bed.cloud().run_instances(bed.run_request("n1.tiny"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->instances[0].host, "h-a-2");
}

TEST(CloudHosts, HeartbeatsAreChecked) {
  CloudTestBed bed;
  TestHost h{"h1", "nimbus-west-1a"};
  auto good = CloudTestBed::heartbeat_body(h, nlohmann::json::array(), nlohmann::json::array());
  auto r = bed.cloud().heartbeat(good);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)["public_pool"], "127.100.1.0/24");
  const auto before = bed.store_dump();
  for (const char* key : {"host_id", "zone", "api_url", "host", "vms"}) {
    auto bad = good;
    bad.erase(key);
    EXPECT_FALSE(bed.cloud().heartbeat(bad).ok()) << key;
  }
  auto bad = good;
  bad["zone"] = "elsewhere-1a";
  EXPECT_FALSE(bed.cloud().heartbeat(bad).ok());
  bad = good;
  bad["host_id"] = "../etc";
  EXPECT_FALSE(bed.cloud().heartbeat(bad).ok());
  bad = good;
  bad["api_url"] = "unix:/run/nimbus.sock";
  EXPECT_FALSE(bed.cloud().heartbeat(bad).ok());
  EXPECT_EQ(bed.store_dump(), before);
}

// A host's report may be anything (a buggy or hostile nimbusd): odd field types count as
// nothing and never throw.
TEST(CloudHosts, OddlyTypedReportsDoNotBreakPlacement) {
  CloudTestBed bed;
  TestHost h{"h1", "nimbus-west-1a"};
  auto body = CloudTestBed::heartbeat_body(
      h, nlohmann::json::parse(R"([{"name": 5, "cpus": "two", "memory_mib": -3, "disk_mib": [1],
                                 "desired_state": 7}, 3, "x", {"name": "y", "cpus": 1.5}])"),
      nlohmann::json::array());
  body["host"]["vm_overhead_mib"] = "lots";
  ASSERT_TRUE(bed.cloud().heartbeat(body).ok());
  auto r = bed.cloud().run_instances(bed.run_request("n1.tiny"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  settle(bed);  // reads the same report
  EXPECT_EQ(state_of(bed, r->instances[0].id), InstanceState::kRunning);
}

TEST(CloudHosts, HeartbeatNumbersBuiltInCodeCountAsCapacity) {
  CloudTestBed bed;
  TestHost h{"h1", "nimbus-west-1a"};
  auto body = CloudTestBed::heartbeat_body(h, nlohmann::json::array(), nlohmann::json::array());
  body["host"]["cpus"]["capacity"] = int{2};  // a signed integer, not parsed from text
  ASSERT_TRUE(bed.cloud().heartbeat(body).ok());
  auto r = bed.cloud().run_instances(bed.run_request("n1.tiny", 2));
  EXPECT_TRUE(r.ok()) << r.error().message;
  r = bed.cloud().run_instances(bed.run_request("n1.tiny"));
  EXPECT_FALSE(r.ok());
}

TEST(CloudInstances, StateRules) {
  CloudTestBed bed;
  bed.add_hosts(1);
  const InstanceRecord a = launch(bed, bed.run_request());
  const InstanceRecord b = launch(bed, bed.run_request());

  // Stop: stopping until the host confirms, then stopped.
  auto st = bed.cloud().stop_instances({a.id}, false);
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_EQ(st->size(), 1u);
  EXPECT_EQ((*st)[0].previous, InstanceState::kRunning);
  EXPECT_EQ((*st)[0].current, InstanceState::kStopping);
  // Starting a stopping instance is refused.
  auto start = bed.cloud().start_instances({a.id});
  ASSERT_FALSE(start.ok());
  EXPECT_EQ(start.error().code, "IncorrectInstanceState");
  settle(bed);
  EXPECT_EQ(state_of(bed, a.id), InstanceState::kStopped);
  // Stopping a stopped one changes nothing; rebooting it is refused.
  st = bed.cloud().stop_instances({a.id}, false);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)[0].current, InstanceState::kStopped);
  auto reboot = bed.cloud().reboot_instances({a.id});
  ASSERT_FALSE(reboot.ok());
  EXPECT_EQ(reboot.error().code, "IncorrectInstanceState");

  // Terminate: shutting-down, then terminated; then nothing else is allowed.
  auto term = bed.cloud().terminate_instances({b.id});
  ASSERT_TRUE(term.ok());
  EXPECT_EQ((*term)[0].current, InstanceState::kShuttingDown);
  for (auto op : {0, 1}) {
    auto r =
        op == 0 ? bed.cloud().stop_instances({b.id}, false) : bed.cloud().start_instances({b.id});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "IncorrectInstanceState") << op;
  }
  settle(bed);
  EXPECT_EQ(state_of(bed, b.id), InstanceState::kTerminated);
  term = bed.cloud().terminate_instances({b.id});
  ASSERT_TRUE(term.ok());  // terminating a terminated instance is fine (and a no-op)
  EXPECT_EQ((*term)[0].current, InstanceState::kTerminated);
  auto r = bed.cloud().start_instances({b.id});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "IncorrectInstanceState");

  // Unknown and malformed ids; a list with one unknown changes none.
  const auto before = bed.store_dump();
  auto unknown = bed.cloud().stop_instances({a.id, "i-0123456789abcdef0"}, false);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, "InvalidInstanceID.NotFound");
  EXPECT_NE(unknown.error().message.find("i-0123456789abcdef0"), std::string::npos);
  auto malformed = bed.cloud().terminate_instances({"i-xyz"});
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.error().code, "InvalidInstanceID.Malformed");
  EXPECT_EQ(bed.store_dump(), before);
}

TEST(CloudInstances, ModifyInstanceTypeOnlyWhenStopped) {
  CloudTestBed bed;
  bed.add_hosts(1);
  const InstanceRecord a = launch(bed, bed.run_request("n1.tiny"));
  auto m = bed.cloud().modify_instance_type(a.id, "n1.medium");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, "IncorrectInstanceState");
  ASSERT_TRUE(bed.cloud().stop_instances({a.id}, false).ok());
  m = bed.cloud().modify_instance_type(a.id, "n1.medium");
  ASSERT_FALSE(m.ok());  // stopping is not stopped
  settle(bed);
  m = bed.cloud().modify_instance_type(a.id, "x1.nope");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, "InvalidParameterValue");
  m = bed.cloud().modify_instance_type(a.id, "n1.medium");
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto i = bed.cloud().instance(a.id);
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(i->instance_type, "n1.medium");
  EXPECT_EQ(i->vcpus, 2u);
  EXPECT_EQ(i->memory_mib, 512u);
}

TEST(CloudInstances, StartClaimsComputeAgainAndFailsCleanlyWithoutRoom) {
  CloudTestBed bed;
  TestHost one;
  one.cpus = 1;
  bed.add_hosts(1, one, {"nimbus-west-1a"});
  const InstanceRecord a = launch(bed, bed.run_request("n1.tiny"));
  ASSERT_TRUE(bed.cloud().stop_instances({a.id}, false).ok());
  settle(bed);
  ASSERT_EQ(state_of(bed, a.id), InstanceState::kStopped);
  auto claim = bed.allocation("h-a-1").instances.at(a.id);
  EXPECT_FALSE(claim.compute);
  EXPECT_FALSE(claim.public_ip.empty());  // the address stays with the stopped instance
  // Its vCPU went to another instance.
  const InstanceRecord b = launch(bed, bed.run_request("n1.tiny"));
  EXPECT_EQ(b.host, "h-a-1");
  const auto before = bed.store_dump();
  auto start = bed.cloud().start_instances({a.id});
  ASSERT_FALSE(start.ok());
  EXPECT_EQ(start.error().code, "InsufficientInstanceCapacity");
  EXPECT_NE(start.error().message.find("vCPU"), std::string::npos) << start.error().message;
  EXPECT_EQ(bed.store_dump(), before);
  EXPECT_EQ(state_of(bed, a.id), InstanceState::kStopped);

  // Once b is gone there is room again.
  ASSERT_TRUE(bed.cloud().terminate_instances({b.id}).ok());
  settle(bed);
  start = bed.cloud().start_instances({a.id});
  ASSERT_TRUE(start.ok()) << start.error().message;
  EXPECT_EQ((*start)[0].previous, InstanceState::kStopped);
  EXPECT_EQ((*start)[0].current, InstanceState::kPending);
  EXPECT_TRUE(bed.allocation("h-a-1").instances.at(a.id).compute);
  settle(bed);
  EXPECT_EQ(state_of(bed, a.id), InstanceState::kRunning);
}

TEST(CloudSecurityGroups, RulesBecomeForwards) {
  CloudTestBed bed;
  bed.add_hosts(1);
  auto g = bed.cloud().create_security_group("web", "web servers", {});
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_TRUE(is_id(g->id, "sg"));
  RunRequest req = bed.run_request();
  req.security_group_ids = {g->id};
  auto r = bed.cloud().run_instances(req);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const InstanceRecord inst = r->instances[0];
  EXPECT_EQ(inst.security_groups, std::vector<std::string>{g->id});
  EXPECT_TRUE(bed.cloud().forwards_for(inst).empty());

  std::vector<SecurityRule> rules = {{"tcp", 22, 22, {"0.0.0.0/0"}, {}},
                                     {"tcp", 8000, 8002, {"0.0.0.0/0"}, {}},
                                     {"udp", 53, 53, {"10.0.0.0/8"}, {}},
                                     {"icmp", -1, -1, {"0.0.0.0/0"}, {}}};
  ASSERT_TRUE(bed.cloud().change_ingress(g->id, "", rules, true).ok());
  auto fwd = bed.cloud().forwards_for(inst);
  std::set<std::string> got;
  for (const auto& f : fwd) {
    EXPECT_EQ(f["host_address"], inst.public_ip);
    EXPECT_EQ(f["host_port"], f["guest_port"]);
    got.insert(fmt::format("{}/{}", f["protocol"].get<std::string>(), f["host_port"].get<int>()));
  }
  EXPECT_EQ(got, (std::set<std::string>{"tcp/22", "tcp/8000", "tcp/8001", "tcp/8002", "udp/53"}));

  // Duplicate and missing rules; neither changes the group.
  const auto before = bed.store_dump();
  auto dup = bed.cloud().change_ingress(g->id, "", {rules[0]}, true);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, "InvalidPermission.Duplicate");
  SecurityRule absent{"tcp", 443, 443, {"0.0.0.0/0"}, {}};
  auto missing = bed.cloud().change_ingress(g->id, "", {rules[1], absent}, false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "InvalidPermission.NotFound");
  EXPECT_EQ(bed.store_dump(), before);
  auto bad = bed.cloud().change_ingress(g->id, "", {{"tcp", 1, 2000, {}, {}}}, true);
  ASSERT_FALSE(bad.ok());  // wider than Nimbus forwards
  EXPECT_EQ(bad.error().code, "InvalidParameterValue");
  bad = bed.cloud().change_ingress(g->id, "", {{"gre", 1, 2, {}, {}}}, true);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bed.store_dump(), before);

  // Revoking by name removes the forwards.
  ASSERT_TRUE(bed.cloud().change_ingress("", "web", {rules[1]}, false).ok());
  EXPECT_EQ(bed.cloud().forwards_for(inst).size(), 2u);

  // A group in use cannot go; the default never can; after termination it can.
  auto del = bed.cloud().delete_security_group(g->id, "");
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.error().code, "DependencyViolation");
  auto def = bed.cloud().delete_security_group("", "default");
  ASSERT_FALSE(def.ok());
  EXPECT_EQ(def.error().code, "CannotDelete");
  ASSERT_TRUE(bed.cloud().terminate_instances({inst.id}).ok());
  settle(bed);
  del = bed.cloud().delete_security_group(g->id, "");
  ASSERT_TRUE(del.ok()) << del.error().message;
  auto gone = bed.cloud().resolve_group(g->id, "");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, "InvalidGroup.NotFound");
  // The name is free again.
  EXPECT_TRUE(bed.cloud().create_security_group("web", "again", {}).ok());
  auto twice = bed.cloud().create_security_group("web", "again", {});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, "InvalidGroup.Duplicate");
}

TEST(CloudPlacementGroups, SpreadUsesDistinctHostsClusterOneHost) {
  CloudTestBed bed;
  bed.add_hosts(2);  // six hosts over three zones
  ASSERT_TRUE(bed.cloud().create_placement_group("apart", "spread", 0, {}).ok());
  ASSERT_TRUE(bed.cloud().create_placement_group("together", "cluster", 0, {}).ok());
  auto dup = bed.cloud().create_placement_group("apart", "spread", 0, {});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, "InvalidPlacementGroup.Duplicate");
  auto bad = bed.cloud().create_placement_group("odd", "scattered", 0, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "InvalidParameterValue");

  RunRequest spread = bed.run_request("n1.tiny", 4);
  spread.placement_group = "apart";
  auto s = bed.cloud().run_instances(spread);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(hosts_of(*s).size(), 4u);
  // Two more: every host then holds one; a seventh has nowhere to go.
  spread.min_count = spread.max_count = 2;
  auto s2 = bed.cloud().run_instances(spread);
  ASSERT_TRUE(s2.ok()) << s2.error().message;
  std::set<std::string> all_hosts = hosts_of(*s);
  for (const auto& h : hosts_of(*s2)) all_hosts.insert(h);
  EXPECT_EQ(all_hosts.size(), 6u);
  spread.min_count = spread.max_count = 1;
  auto s3 = bed.cloud().run_instances(spread);
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.error().code, "InsufficientInstanceCapacity");

  RunRequest cluster = bed.run_request("n1.tiny", 3);
  cluster.placement_group = "together";
  auto c = bed.cloud().run_instances(cluster);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(hosts_of(*c).size(), 1u);
  cluster.min_count = cluster.max_count = 1;
  auto c2 = bed.cloud().run_instances(cluster);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->instances[0].host, c->instances[0].host);

  RunRequest nowhere = bed.run_request();
  nowhere.placement_group = "missing";
  auto n = bed.cloud().run_instances(nowhere);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, "InvalidPlacementGroup.Unknown");

  auto in_use = bed.cloud().delete_placement_group("together");
  ASSERT_FALSE(in_use.ok());
  EXPECT_EQ(in_use.error().code, "InvalidPlacementGroup.InUse");
}

TEST(CloudTags, CreateDeleteAndLimits) {
  CloudTestBed bed;
  bed.add_hosts(1);
  auto r = bed.cloud().run_instances(bed.run_request());
  ASSERT_TRUE(r.ok());
  const std::string id = r->instances[0].id;
  ASSERT_TRUE(
      bed.cloud().create_tags({id, bed.image_id()}, {{"Name", "web"}, {"env", "dev"}}).ok());
  auto i = bed.cloud().instance(id);
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(i->tags, (Tags{{"Name", "web"}, {"env", "dev"}}));
  auto img = bed.cloud().image(bed.image_id());
  ASSERT_TRUE(img.ok());
  EXPECT_EQ(img->tags.at("Name"), "web");

  // A value that does not match keeps the tag; a key alone removes it.
  ASSERT_TRUE(bed.cloud().delete_tags({id}, {{"Name", std::string("db")}}).ok());
  EXPECT_EQ(bed.cloud().instance(id)->tags.count("Name"), 1u);
  ASSERT_TRUE(bed.cloud().delete_tags({id}, {{"Name", std::nullopt}}).ok());
  EXPECT_EQ(bed.cloud().instance(id)->tags, (Tags{{"env", "dev"}}));

  const auto before = bed.store_dump();
  auto reserved = bed.cloud().create_tags({id}, {{"aws:owner", "x"}});
  ASSERT_FALSE(reserved.ok());
  EXPECT_EQ(reserved.error().code, "InvalidParameterValue");
  auto long_key = bed.cloud().create_tags({id}, {{std::string(129, 'k'), "x"}});
  ASSERT_FALSE(long_key.ok());
  auto long_value = bed.cloud().create_tags({id}, {{"k", std::string(257, 'v')}});
  ASSERT_FALSE(long_value.ok());
  auto unknown = bed.cloud().create_tags({id, "i-0123456789abcdef0"}, {{"a", "b"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, "InvalidInstanceID.NotFound");
  auto bad_id = bed.cloud().create_tags({"vol-123"}, {{"a", "b"}});
  ASSERT_FALSE(bad_id.ok());
  EXPECT_EQ(bad_id.error().code, "InvalidID");
  EXPECT_EQ(bed.store_dump(), before);

  // 50 tags per resource: the instance has 1, 49 more fit, the 51st does not. A refused
  // request tags none of its resources.
  Tags many;
  for (int n = 0; n < 49; ++n) many[fmt::format("k{:02}", n)] = "v";
  ASSERT_TRUE(bed.cloud().create_tags({id}, many).ok());
  EXPECT_EQ(bed.cloud().instance(id)->tags.size(), 50u);
  const auto full = bed.store_dump();
  auto over = bed.cloud().create_tags({bed.image_id(), id}, {{"one-more", "x"}});
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, "TagLimitExceeded");
  EXPECT_EQ(bed.store_dump(), full);
  EXPECT_EQ(bed.cloud().image(bed.image_id())->tags.count("one-more"), 0u);
}

}  // namespace
}  // namespace nimbus::cloud

namespace nimbus::cloud {
namespace {

// Terminated then launched again at once: the capacity is free as soon as `terminated`
// shows, even while the host's last heartbeat still lists the deleted VM.
TEST(CloudRun, CapacityIsFreeOnceTerminatedEvenBeforeTheNextHeartbeat) {
  CloudTestBed bed;
  TestHost shape;
  shape.cpus = 1;
  shape.memory_mib = 128;
  bed.add_hosts(1, shape, {"nimbus-west-1a"});
  auto first = bed.cloud().run_instances(bed.run_request("n1.tiny"));
  ASSERT_TRUE(first.ok()) << first.error().message;
  const std::string id = first->instances.at(0).id;
  bed.reconciler().pass_now();  // the VM is made
  bed.heartbeat_all();          // ... and the host reports it
  ASSERT_TRUE(bed.cloud().terminate_instances({id}).ok());
  bed.reconciler().pass_now();  // deleted, the claim released; no heartbeat since
  ASSERT_EQ(state_of(bed, id), InstanceState::kTerminated);
  auto again = bed.cloud().run_instances(bed.run_request("n1.tiny"));
  EXPECT_TRUE(again.ok()) << again.error().message;
}

}  // namespace
}  // namespace nimbus::cloud
