// Host liveness shared by replicas (liveness.cpp): two Clouds on one real etcd
// (etcd_test_server.h) agree on which hosts are alive, whichever of them gets the
// heartbeats; on SQLite liveness stays in memory. Skips without an `etcd` binary.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "cloud/cloud.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/etcd_test_server.h"
#include "cloud/sqlite_store.h"

namespace nimbus::cloud {
namespace {

using namespace std::chrono_literals;
using etcd_test::EtcdServer;

std::string unique_host(const char* stem) {
  static std::atomic<int> n{0};
  return fmt::format("{}-{}-{}", stem, ::getpid(), ++n);
}

nlohmann::json vm_list(const std::string& name) {
  return nlohmann::json::array({{{"name", name}, {"state", "running"}}});
}

class SharedLivenessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EtcdServer& e = EtcdServer::get();
    if (!e.status().ok()) GTEST_SKIP() << e.status().message();
    for (int i = 0; i < 2; ++i) {
      EtcdOptions o;
      o.endpoints = {e.endpoint()};
      auto s = open_etcd_store(o);
      ASSERT_TRUE(s.ok()) << s.message();
      stores_[i] = std::move(*s);
      CloudOptions co = CloudTestBed::default_options();
      co.host_timeout = 2000ms;  // a 2 s lease: etcd's minimum TTL
      clouds_[i] = std::make_unique<Cloud>(*stores_[i], co);
      Status st = clouds_[i]->init();
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_TRUE(clouds_[i]->shared_liveness());
    }
  }
  Cloud& a() { return *clouds_[0]; }
  Cloud& b() { return *clouds_[1]; }

  static Ec2Result<nlohmann::json> beat(Cloud& c, const std::string& host,
                                        const nlohmann::json& vms) {
    TestHost h;
    h.id = host;
    h.zone = c.zones()[0];
    return c.heartbeat(CloudTestBed::heartbeat_body(h, vms, nlohmann::json::array()));
  }
  static bool wait_alive(Cloud& c, const std::string& host, bool want,
                         std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (c.host_alive(host) != want && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    return c.host_alive(host) == want;
  }

  std::unique_ptr<Store> stores_[2];
  std::unique_ptr<Cloud> clouds_[2];
};

TEST_F(SharedLivenessTest, AHeartbeatToOneReplicaIsSeenByTheOtherAndItsEndByBoth) {
  const std::string h = unique_host("live");
  EXPECT_FALSE(b().host_alive(h));
  auto r = beat(a(), h, vm_list("i-one"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(wait_alive(b(), h, true, 3s)) << "the other replica did not see the heartbeat";
  EXPECT_EQ(b().liveness(h)->vms, vm_list("i-one"));
  auto kv = stores_[0]->get(kAlivePrefix + h);
  ASSERT_TRUE(kv.ok() && kv->has_value());
  const int64_t put_at = (*kv)->mod_revision;
  // The same report again renews the lease and writes nothing.
  ASSERT_TRUE(beat(a(), h, vm_list("i-one")).ok());
  EXPECT_EQ((*stores_[0]->get(kAlivePrefix + h))->mod_revision, put_at);
  // A new VM list is put, and the other replica sees it.
  ASSERT_TRUE(beat(a(), h, vm_list("i-two")).ok());
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (b().liveness(h)->vms != vm_list("i-two") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(b().liveness(h)->vms, vm_list("i-two"));
  // No more heartbeats: the lease ends and both replicas see the host down at once.
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_alive(b(), h, false, 8s)) << "the lease did not end";
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 1000ms);
  ASSERT_TRUE(wait_alive(a(), h, false, 1s));
  bool listed = false;
  auto hosts = b().hosts();
  ASSERT_TRUE(hosts.ok());
  for (const HostView& v : *hosts) {
    if (v.record.id != h) continue;
    listed = true;
    EXPECT_FALSE(v.alive);
  }
  EXPECT_TRUE(listed);
  // Back, through the other replica: a new lease.
  ASSERT_TRUE(beat(b(), h, vm_list("i-two")).ok());
  EXPECT_TRUE(wait_alive(a(), h, true, 3s));
}

// A host whose heartbeats went to the other replica for a while and came back: the key
// is on the other replica's lease, which nobody renews any more, so the first replica
// puts it on its own lease again; the host never goes down.
TEST_F(SharedLivenessTest, HeartbeatsMovingBetweenReplicasKeepTheHostAlive) {
  const std::string h = unique_host("moving");
  ASSERT_TRUE(beat(a(), h, vm_list("i-x")).ok());
  ASSERT_TRUE(wait_alive(a(), h, true, 3s));
  ASSERT_TRUE(beat(b(), h, vm_list("i-x")).ok());
  // Wait until replica a has seen b's put (so it knows the key moved).
  const int64_t b_put = (*stores_[0]->get(kAlivePrefix + h))->mod_revision;
  const auto seen_deadline = std::chrono::steady_clock::now() + 3s;
  while (a().liveness(h)->revision < b_put && std::chrono::steady_clock::now() < seen_deadline)
    std::this_thread::sleep_for(20ms);
  const auto until = std::chrono::steady_clock::now() + 5s;  // over two of b's lease TTLs
  while (std::chrono::steady_clock::now() < until) {
    auto r = beat(a(), h, vm_list("i-x"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    std::this_thread::sleep_for(400ms);
    ASSERT_TRUE(a().host_alive(h));
    ASSERT_TRUE(b().host_alive(h));
  }
}

// A replica that starts later knows who is alive from its first list.
TEST_F(SharedLivenessTest, ANewReplicaListsWhoIsAlive) {
  const std::string h = unique_host("listed");
  ASSERT_TRUE(beat(a(), h, vm_list("i-l")).ok());
  Cloud late(*stores_[1], a().options());
  ASSERT_TRUE(late.init().ok());
  EXPECT_TRUE(late.host_alive(h));  // from the list, before any watch event
  EXPECT_EQ(late.liveness(h)->vms, vm_list("i-l"));
  EXPECT_FALSE(late.host_alive(unique_host("never")));
}

// A store whose watches a test can make deaf (events dropped) and then end with an error,
// as a watch whose start revision was compacted away while it could not reach etcd.
class FlakyWatchStore : public Store {
 public:
  explicit FlakyWatchStore(Store& inner) : inner_(inner) {}
  Result<std::optional<KeyValue>> get(const std::string& k) override { return inner_.get(k); }
  Result<std::vector<KeyValue>> list(const std::string& p) override { return inner_.list(p); }
  Result<TxnResult> txn(const std::vector<Compare>& c, const std::vector<Op>& o) override {
    return inner_.txn(c, o);
  }
  std::string describe() const override { return "flaky:" + inner_.describe(); }
  Result<int64_t> lease_grant(int64_t ttl) override { return inner_.lease_grant(ttl); }
  Result<int64_t> lease_keep_alive(int64_t l) override { return inner_.lease_keep_alive(l); }
  Status lease_revoke(int64_t l) override { return inner_.lease_revoke(l); }
  Result<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t start,
                                       WatchCallback cb) override {
    auto state = std::make_shared<State>();
    state->cb = std::move(cb);
    auto w = inner_.watch(prefix, start, [state](Result<std::vector<WatchEvent>> r) {
      std::lock_guard lock(state->mu);
      if (!state->deaf) state->cb(std::move(r));
    });
    if (!w.ok()) return w.status();
    std::lock_guard lock(mu_);
    ++watches_;
    current_ = state;
    return std::move(*w);
  }
  void deafen() {
    std::lock_guard lock(mu_);
    std::lock_guard l2(current_->mu);
    current_->deaf = true;
  }
  void end_with_error() {  // the deaf watch's end
    std::lock_guard lock(mu_);
    auto s = current_;
    s->cb(Status::not_found("etcd watch: revision 1 was compacted (test)"));
  }
  int watches() {
    std::lock_guard lock(mu_);
    return watches_;
  }

 private:
  struct State {
    std::mutex mu;
    bool deaf = false;
    WatchCallback cb;
  };
  Store& inner_;
  std::mutex mu_;
  int watches_ = 0;
  std::shared_ptr<State> current_;
};

// After a watch error the replica lists again (learning what it missed meanwhile) and
// watches again from there.
TEST_F(SharedLivenessTest, AWatchErrorIsFollowedByAListAndANewWatch) {
  FlakyWatchStore flaky(*stores_[1]);
  Cloud c(flaky, a().options());
  ASSERT_TRUE(c.init().ok());
  ASSERT_EQ(flaky.watches(), 1);
  const std::string h = unique_host("relist");
  ASSERT_TRUE(beat(a(), h, vm_list("i-r")).ok());
  ASSERT_TRUE(wait_alive(c, h, true, 3s));
  // Deaf: the key's delete is missed...
  flaky.deafen();
  auto del = stores_[0]->txn({}, {Op{Op::Kind::kDelete, kAlivePrefix + h, ""}});
  ASSERT_TRUE(del.ok() && del->succeeded);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(c.host_alive(h));
  // ...until the watch ends: the list says the host is gone.
  flaky.end_with_error();
  EXPECT_TRUE(wait_alive(c, h, false, 3s));
  EXPECT_EQ(flaky.watches(), 2);
  // And the new watch follows: the host back, through the other replica.
  ASSERT_TRUE(beat(a(), h, vm_list("i-r2")).ok());
  EXPECT_TRUE(wait_alive(c, h, true, 3s));
  EXPECT_EQ(c.liveness(h)->vms, vm_list("i-r2"));
}

TEST(SharedLiveness, SqliteKeepsLivenessInMemory) {
  CloudTestBed bed;
  EXPECT_FALSE(bed.cloud().shared_liveness());
  TestHost h{"h-mem", bed.cloud().zones()[0]};
  ASSERT_TRUE(bed.heartbeat(h).ok());
  EXPECT_TRUE(bed.cloud().host_alive("h-mem"));
  auto kvs = bed.store().list(kAlivePrefix);
  ASSERT_TRUE(kvs.ok());
  EXPECT_TRUE(kvs->empty());
  bed.advance(11s);
  EXPECT_FALSE(bed.cloud().host_alive("h-mem"));
}

}  // namespace
}  // namespace nimbus::cloud
