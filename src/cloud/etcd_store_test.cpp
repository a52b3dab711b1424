// The etcd store against a real single-member etcd (etcd_test_server.h); every test here
// skips when no `etcd` binary is installed.
#include "cloud/etcd_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cloud/etcd_test_server.h"
#include "cloud/leader.h"
#include "cloud/sqlite_store.h"
#include "cloud/store_conformance_test.h"
#include "common/http_client.h"

namespace nimbus::cloud {
namespace {

using namespace std::chrono_literals;
using etcd_test::EtcdServer;
using etcd_test::free_port;

INSTANTIATE_TEST_SUITE_P(Etcd, StoreConformance,
                         ::testing::Values(StoreBackend{"Etcd",
                                                        []() -> Result<Store*> {
                                                          EtcdServer& e = EtcdServer::get();
                                                          if (!e.status().ok()) return e.status();
                                                          return e.store();
                                                        },
                                                        []() -> Result<int64_t> {
                                                          EtcdServer& e = EtcdServer::get();
                                                          if (!e.status().ok()) return e.status();
                                                          return e.fresh_revision();
                                                        }}));

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EtcdServer& e = EtcdServer::get();
    if (!e.status().ok()) GTEST_SKIP() << e.status().message();
    store_ = e.store();
  }
  Store& store() { return *store_; }

 private:
  Store* store_ = nullptr;
};

// Collects a watch's batches for a test to wait on.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<WatchEvent> events;
  std::vector<Status> errors;
  int calls = 0;

  WatchCallback callback() {
    return [this](Result<std::vector<WatchEvent>> r) {
      std::lock_guard lock(mu);
      ++calls;
      if (!r.ok()) {
        errors.push_back(r.status());
      } else {
        for (auto& e : *r) events.push_back(std::move(e));
      }
      cv.notify_all();
    };
  }
  bool wait_for(size_t n_events, std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return events.size() >= n_events || !errors.empty(); });
  }
};

TEST(EtcdUrl, ParsesMembers) {
  auto one = parse_etcd_url("etcd://127.0.0.1:2379");
  ASSERT_TRUE(one.ok()) << one.message();
  EXPECT_EQ(*one, std::vector<std::string>{"http://127.0.0.1:2379"});
  auto three = parse_etcd_url("etcd://a:1,b.example:2,[::1]:3/");
  ASSERT_TRUE(three.ok()) << three.message();
  EXPECT_EQ(*three,
            (std::vector<std::string>{"http://a:1", "http://b.example:2", "http://[::1]:3"}));
  for (const char* bad :
       {"", "etcd://", "http://a:1", "etcd://a", "etcd://a:", "etcd://a:1,", "etcd://a:1,,b:2",
        "etcd://a:x", "etcd://a:1/path", "etcd://a:99999", "etcd://a b:1", "ETCD://a:1"}) {
    EXPECT_EQ(parse_etcd_url(bad).code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(open_etcd_store(EtcdOptions{}).code(), Code::kInvalidArgument);
}

TEST(EtcdStoreOffline, NoMemberReachableIsUnavailableAndSaysWhy) {
  EtcdOptions o;
  o.endpoints = {fmt::format("http://127.0.0.1:{}", free_port()),
                 fmt::format("http://127.0.0.1:{}", free_port())};
  o.retry_ms = 300;
  auto store = open_etcd_store(o);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->describe(),
            fmt::format("etcd://{},{}", o.endpoints[0].substr(7), o.endpoints[1].substr(7)));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = put(**store, "/a", "1");
  EXPECT_EQ(r.code(), Code::kUnavailable);
  EXPECT_NE(r.message().find("no quorum (2 of 2 members unreachable"), std::string::npos)
      << r.message();
  EXPECT_NE(r.message().find(o.endpoints[1]), std::string::npos) << r.message();
  EXPECT_EQ((*store)->get("/a").code(), Code::kUnavailable);
  EXPECT_EQ((*store)->list("/").code(), Code::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(EtcdStoreTest, FailsOverToTheNextMember) {
  EtcdOptions o;
  o.endpoints = {fmt::format("http://127.0.0.1:{}", free_port()), EtcdServer::get().endpoint()};
  auto other = open_etcd_store(o);
  ASSERT_TRUE(other.ok());
  auto rev = put(**other, "/failover/a", "1");
  ASSERT_TRUE(rev.ok()) << rev.message();
  auto seen = store().get("/failover/a");
  ASSERT_TRUE(seen.ok() && seen->has_value());
  EXPECT_EQ((*seen)->mod_revision, *rev);
}

TEST_F(EtcdStoreTest, EtcdErrorsAreTyped) {
  // A lease that does not exist: etcd's NotFound, and nothing written.
  Op leased{Op::Kind::kPut, "/lease/none", "x", 0x7eadbeef};
  auto r = store().txn({}, {leased});
  EXPECT_EQ(r.code(), Code::kNotFound);
  EXPECT_NE(r.message().find("lease not found"), std::string::npos) << r.message();
  EXPECT_FALSE(store().get("/lease/none")->has_value());
  auto kept = store().lease_keep_alive(0x7eadbeef);
  EXPECT_EQ(kept.code(), Code::kNotFound) << kept.message();
  Status revoked = store().lease_revoke(0x7eadbeef);
  EXPECT_EQ(revoked.code(), Code::kNotFound) << revoked.message();
  EXPECT_EQ(store().lease_grant(0).code(), Code::kInvalidArgument);
  EXPECT_EQ(store().get("").code(), Code::kInvalidArgument);
}

TEST_F(EtcdStoreTest, LeasesKeepKeysAliveAndTheirEndDeletesThem) {
  auto lease = store().lease_grant(30);
  ASSERT_TRUE(lease.ok()) << lease.message();
  EXPECT_GT(*lease, 0);
  Op alive{Op::Kind::kPut, "/leases/h1/alive", "up", *lease};
  auto put_rev = store().txn({Compare{"/leases/h1/alive", 0}}, {alive});
  ASSERT_TRUE(put_rev.ok() && put_rev->succeeded) << put_rev.message();
  auto ttl = store().lease_keep_alive(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.message();
  EXPECT_GT(*ttl, 20);
  EXPECT_LE(*ttl, 30);
  // Revoked: the key goes with it, at a new revision.
  ASSERT_TRUE(store().lease_revoke(*lease).ok());
  auto gone = store().get("/leases/h1/alive");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  EXPECT_GT(store().txn({}, {})->revision, put_rev->revision);
  EXPECT_EQ(store().lease_keep_alive(*lease).code(), Code::kNotFound);
  // A put on the revoked lease fails and writes nothing.
  auto late = store().txn({}, {alive});
  EXPECT_EQ(late.code(), Code::kNotFound);
  EXPECT_FALSE(store().get("/leases/h1/alive")->has_value());
}

// A short lease that nobody keeps alive expires by itself; a watch on the prefix sees the
// put and then etcd's delete.
TEST_F(EtcdStoreTest, AnExpiredLeaseIsADeleteThatWatchersSee) {
  auto start = store().txn({}, {});
  ASSERT_TRUE(start.ok());
  Seen seen;
  // From the next revision: 0 ("from now") would start whenever the stream is set up.
  auto watch = store().watch("/expiry/", start->revision + 1, seen.callback());
  ASSERT_TRUE(watch.ok()) << watch.message();
  auto lease = store().lease_grant(2);  // etcd's minimum with the default election timeout
  ASSERT_TRUE(lease.ok()) << lease.message();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = store().txn({}, {Op{Op::Kind::kPut, "/expiry/h2", "up", *lease}});
  ASSERT_TRUE(r.ok() && r->succeeded) << r.message();
  ASSERT_TRUE(seen.wait_for(2, 15s)) << "no delete within 15 s";
  const auto waited = std::chrono::steady_clock::now() - t0;
  std::lock_guard lock(seen.mu);
  ASSERT_TRUE(seen.errors.empty()) << seen.errors[0].message();
  ASSERT_EQ(seen.events.size(), 2u);
  EXPECT_EQ(seen.events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(seen.events[0].kv.key, "/expiry/h2");
  EXPECT_EQ(seen.events[0].kv.value, "up");
  EXPECT_EQ(seen.events[0].kv.mod_revision, r->revision);
  EXPECT_EQ(seen.events[1].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(seen.events[1].kv.key, "/expiry/h2");
  EXPECT_GT(seen.events[1].kv.mod_revision, r->revision);
  EXPECT_GE(waited, 1500ms);
  EXPECT_FALSE(store().get("/expiry/h2")->has_value());
}

TEST_F(EtcdStoreTest, WatchReplaysFromARevisionThenFollowsAndStopsWhenDestroyed) {
  auto a = put(store(), "/watch/a", "1");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(put(store(), "/watchers", "not under the prefix").ok());
  auto b = put(store(), "/watch/b", "2");
  ASSERT_TRUE(b.ok());
  Seen seen;
  auto watch = store().watch("/watch/", *a, seen.callback());
  ASSERT_TRUE(watch.ok()) << watch.message();
  ASSERT_TRUE(seen.wait_for(2)) << "the history from revision " << *a << " did not come";
  // Then live changes: a txn of two ops comes at one revision, and a delete.
  auto t =
      store().txn({}, {Op{Op::Kind::kPut, "/watch/c", "3"}, Op{Op::Kind::kDelete, "/watch/a", ""}});
  ASSERT_TRUE(t.ok() && t->succeeded);
  ASSERT_TRUE(seen.wait_for(4));
  {
    std::lock_guard lock(seen.mu);
    ASSERT_EQ(seen.events.size(), 4u);
    EXPECT_EQ(seen.events[0].kv.key, "/watch/a");
    EXPECT_EQ(seen.events[0].kv.mod_revision, *a);
    EXPECT_EQ(seen.events[1].kv.key, "/watch/b");
    EXPECT_EQ(seen.events[1].kv.value, "2");
    EXPECT_EQ(seen.events[2].type, WatchEvent::Type::kPut);
    EXPECT_EQ(seen.events[2].kv.key, "/watch/c");
    EXPECT_EQ(seen.events[2].kv.create_revision, t->revision);
    EXPECT_EQ(seen.events[3].type, WatchEvent::Type::kDelete);
    EXPECT_EQ(seen.events[3].kv.key, "/watch/a");
    EXPECT_EQ(seen.events[3].kv.mod_revision, t->revision);
    EXPECT_TRUE(seen.errors.empty());
  }
  // Destroyed: no callback afterwards.
  const auto t0 = std::chrono::steady_clock::now();
  watch->reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  int calls;
  {
    std::lock_guard lock(seen.mu);
    calls = seen.calls;
  }
  ASSERT_TRUE(put(store(), "/watch/d", "4").ok());
  std::this_thread::sleep_for(300ms);
  std::lock_guard lock(seen.mu);
  EXPECT_EQ(seen.calls, calls);
}

TEST_F(EtcdStoreTest, WatchFromACompactedRevisionEndsWithAnError) {
  auto first = put(store(), "/compacted/a", "1");
  ASSERT_TRUE(first.ok());
  auto now = put(store(), "/compacted/a", "2");
  ASSERT_TRUE(now.ok());
  // Compact the history up to now (etcd's own API; the store does not compact).
  auto client = http::Client::create(EtcdServer::get().endpoint());
  ASSERT_TRUE(client.ok());
  auto c = client->request("POST", "/v3/kv/compaction",
                           fmt::format(R"({{"revision":"{}","physical":true}})", *now));
  ASSERT_TRUE(c.ok() && http::is_success(*c)) << (c.ok() ? c->body : c.message());
  Seen seen;
  auto watch = store().watch("/compacted/", *first, seen.callback());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(seen.wait_for(1));
  std::lock_guard lock(seen.mu);
  ASSERT_EQ(seen.errors.size(), 1u);
  EXPECT_EQ(seen.errors[0].code(), Code::kNotFound);
  EXPECT_NE(seen.errors[0].message().find("compacted"), std::string::npos)
      << seen.errors[0].message();
  EXPECT_TRUE(seen.events.empty());
}

// Leader election (leader.h) on the etcd store: one of two is the leader; when it steps
// down the other takes over within a TTL's fraction; on SQLite the one elector leads.
TEST_F(EtcdStoreTest, OneLeaderAndATakeOver) {
  std::atomic<int> changes{0};
  LeaderElector a(store(), "/election/leader", "a", 2s, [&](bool) { ++changes; });
  LeaderElector b(store(), "/election/leader", "b", 2s);
  a.start();
  const auto wait = [](const LeaderElector& e, bool want, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (e.is_leader() != want && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    return e.is_leader() == want;
  };
  ASSERT_TRUE(wait(a, true, 5s));
  b.start();
  std::this_thread::sleep_for(1500ms);  // b campaigns a few times, in vain
  EXPECT_TRUE(a.is_leader());
  EXPECT_FALSE(b.is_leader());
  auto held = store().get("/election/leader");
  ASSERT_TRUE(held.ok() && held->has_value());
  EXPECT_EQ((*held)->value, "a");
  const auto t0 = std::chrono::steady_clock::now();
  a.stop();  // steps down: the lease is revoked, the key goes
  EXPECT_FALSE(a.is_leader());
  ASSERT_TRUE(wait(b, true, 3s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ((*store().get("/election/leader"))->value, "b");
  EXPECT_EQ(changes.load(), 2);  // became leader, stopped being it
  b.stop();
  EXPECT_FALSE(store().get("/election/leader")->has_value());
}

TEST(LeaderElector, AStoreWithoutLeasesHasOneLeader) {
  auto sqlite = open_sqlite_store(":memory:");
  ASSERT_TRUE(sqlite.ok());
  LeaderElector e(**sqlite, "/leader", "only", 2s);
  e.start();
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!e.is_leader() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(e.is_leader());
  e.stop();
  EXPECT_FALSE(e.is_leader());
}

}  // namespace
}  // namespace nimbus::cloud
