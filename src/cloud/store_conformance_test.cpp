// The Store conformance suite (store_conformance_test.h): instantiated for SQLite in
// sqlite_store_test.cpp and for etcd in etcd_store_test.cpp.
#include "cloud/store_conformance_test.h"

#include <atomic>
#include <thread>
#include <vector>

namespace nimbus::cloud {

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StoreConformance);

void StoreConformance::SetUp() {
  auto s = GetParam().store();
  if (!s.ok()) GTEST_SKIP() << s.message();
  store_ = *s;
  static std::atomic<int> next{0};
  prefix_ = "/t" + std::to_string(++next);
  // An empty txn changes nothing and tells the revision.
  auto r = store_->txn({}, {});
  ASSERT_TRUE(r.ok()) << r.message();
  ASSERT_TRUE(r->succeeded);
  base_ = r->revision;
}

namespace {

Op put_op(std::string key, std::string value) {
  return Op{Op::Kind::kPut, std::move(key), std::move(value)};
}
Op delete_op(std::string key) { return Op{Op::Kind::kDelete, std::move(key), ""}; }

std::vector<std::string> keys_of(const std::vector<KeyValue>& kvs) {
  std::vector<std::string> keys;
  for (const KeyValue& kv : kvs) keys.push_back(kv.key);
  return keys;
}

TEST_P(StoreConformance, FreshStoreIsAtRevisionOne) {
  auto r = GetParam().fresh_revision();
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, 1);  // as a fresh etcd cluster: the first write makes revision 2
}

TEST_P(StoreConformance, PutGetAndRevisionsAsEtcd) {
  auto missing = store().get(k("/a"));
  ASSERT_TRUE(missing.ok()) << missing.message();
  EXPECT_FALSE(missing->has_value());

  // Each write moves the one global revision by one.
  auto r1 = put(store(), k("/a"), "one");
  ASSERT_TRUE(r1.ok()) << r1.message();
  EXPECT_EQ(*r1, base() + 1);
  auto r2 = put(store(), k("/b"), "two");
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2, base() + 2);
  auto r3 = put(store(), k("/a"), "uno");
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(*r3, base() + 3);

  auto a = store().get(k("/a"));
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->key, k("/a"));
  EXPECT_EQ((*a)->value, "uno");
  EXPECT_EQ((*a)->mod_revision, base() + 3);
  EXPECT_EQ((*a)->create_revision, base() + 1);  // kept across updates
  auto b = store().get(k("/b"));
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->mod_revision, base() + 2);
  EXPECT_EQ((*b)->create_revision, base() + 2);
}

TEST_P(StoreConformance, ValuesAreBytes) {
  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(put(store(), k("/bin"), binary).ok());
  ASSERT_TRUE(put(store(), k("/empty"), "").ok());
  const std::string odd_key = k(std::string("/\x01\0\xfe", 4));
  ASSERT_TRUE(put(store(), odd_key, "k").ok());
  auto v = store().get(k("/bin"));
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->value, binary);
  auto e = store().get(k("/empty"));
  ASSERT_TRUE(e.ok() && e->has_value());  // an empty value is a key that exists
  EXPECT_EQ((*e)->value, "");
  auto o = store().get(odd_key);
  ASSERT_TRUE(o.ok() && o->has_value());
  EXPECT_EQ((*o)->key, odd_key);
  EXPECT_EQ((*o)->value, "k");
}

TEST_P(StoreConformance, CompareAndSwap) {
  auto rev = put(store(), k("/k"), "v1");
  ASSERT_TRUE(rev.ok());
  // A stale revision fails and changes nothing.
  auto stale = put_if_revision(store(), k("/k"), "v2", *rev - 1);
  EXPECT_EQ(stale.code(), Code::kConflict);
  auto still = store().get(k("/k"));
  ASSERT_TRUE(still.ok() && still->has_value());
  EXPECT_EQ((*still)->value, "v1");
  EXPECT_EQ((*still)->mod_revision, *rev);
  // The current revision wins, once.
  auto next = put_if_revision(store(), k("/k"), "v2", *rev);
  ASSERT_TRUE(next.ok()) << next.message();
  EXPECT_EQ(*next, *rev + 1);
  EXPECT_EQ(put_if_revision(store(), k("/k"), "v3", *rev).code(), Code::kConflict);
  // The raw txn reports failure with the store's revision, not an error.
  auto raw = store().txn({Compare{k("/k"), *rev}}, {put_op(k("/k"), "v4")});
  ASSERT_TRUE(raw.ok()) << raw.message();
  EXPECT_FALSE(raw->succeeded);
  EXPECT_EQ(raw->revision, *next);
  // Comparing an absent key on a non-zero revision fails too.
  auto absent = store().txn({Compare{k("/nope"), 5}}, {put_op(k("/nope"), "x")});
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->succeeded);
  EXPECT_FALSE(store().get(k("/nope"))->has_value());
}

TEST_P(StoreConformance, CreateOnly) {
  auto first = put_if_absent(store(), k("/instances/i-1"), "a");
  ASSERT_TRUE(first.ok()) << first.message();
  auto second = put_if_absent(store(), k("/instances/i-1"), "b");
  EXPECT_EQ(second.code(), Code::kConflict);
  EXPECT_NE(second.message().find("exists"), std::string::npos) << second.message();
  EXPECT_EQ((*store().get(k("/instances/i-1")))->value, "a");
}

TEST_P(StoreConformance, DeleteForgetsTheKeyAndItsCreation) {
  ASSERT_TRUE(put(store(), k("/k"), "v").ok());
  auto before = store().get(k("/k"));
  ASSERT_TRUE(before.ok() && before->has_value());
  auto del = store().txn({Compare{k("/k"), (*before)->mod_revision}}, {delete_op(k("/k"))});
  ASSERT_TRUE(del.ok() && del->succeeded);
  EXPECT_EQ(del->revision, (*before)->mod_revision + 1);
  EXPECT_FALSE(store().get(k("/k"))->has_value());
  // Deleting what is not there succeeds without moving the revision (as etcd).
  auto again = store().txn({}, {delete_op(k("/k"))});
  ASSERT_TRUE(again.ok() && again->succeeded);
  EXPECT_EQ(again->revision, del->revision);
  // Re-created: a new create_revision.
  auto re = put_if_absent(store(), k("/k"), "w");
  ASSERT_TRUE(re.ok());
  EXPECT_EQ((*store().get(k("/k")))->create_revision, *re);
}

TEST_P(StoreConformance, MultiOpTxnIsAtomic) {
  ASSERT_TRUE(put(store(), k("/hosts/h1/alloc"), "4").ok());
  ASSERT_TRUE(put(store(), k("/old"), "x").ok());
  auto alloc = *store().get(k("/hosts/h1/alloc"));
  // One failing compare among several: nothing of the ops happens.
  auto failed = store().txn(
      {Compare{k("/hosts/h1/alloc"), (*alloc).mod_revision}, Compare{k("/i/1"), 7}},
      {put_op(k("/hosts/h1/alloc"), "6"), put_op(k("/i/1"), "rec"), delete_op(k("/old"))});
  ASSERT_TRUE(failed.ok());
  EXPECT_FALSE(failed->succeeded);
  EXPECT_EQ((*store().get(k("/hosts/h1/alloc")))->value, "4");
  EXPECT_FALSE(store().get(k("/i/1"))->has_value());
  EXPECT_TRUE(store().get(k("/old"))->has_value());

  // All compares hold: every op at the one same revision.
  auto ok = store().txn(
      {Compare{k("/hosts/h1/alloc"), (*alloc).mod_revision}, Compare{k("/i/1"), 0}},
      {put_op(k("/hosts/h1/alloc"), "6"), put_op(k("/i/1"), "rec"), delete_op(k("/old"))});
  ASSERT_TRUE(ok.ok() && ok->succeeded);
  EXPECT_EQ(ok->revision, base() + 3);  // one revision for the whole txn
  auto a = *store().get(k("/hosts/h1/alloc"));
  auto i = *store().get(k("/i/1"));
  EXPECT_EQ(a->value, "6");
  EXPECT_EQ(i->value, "rec");
  EXPECT_EQ(a->mod_revision, ok->revision);
  EXPECT_EQ(i->mod_revision, ok->revision);
  EXPECT_FALSE(store().get(k("/old"))->has_value());
}

TEST_P(StoreConformance, BadTxnsAreRefusedAndChangeNothing) {
  EXPECT_EQ(store().txn({}, {put_op("", "v")}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store().txn({Compare{"", 0}}, {}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store().txn({Compare{k("/a"), -1}}, {}).code(), Code::kInvalidArgument);
  EXPECT_EQ(
      store().txn({}, {put_op(k("/a"), "1"), put_op(k("/b"), "2"), delete_op(k("/a"))}).code(),
      Code::kInvalidArgument);
  Op leased_delete = delete_op(k("/a"));
  leased_delete.lease = 7;
  EXPECT_EQ(store().txn({}, {leased_delete}).code(), Code::kInvalidArgument);
  Op negative_lease = put_op(k("/a"), "1");
  negative_lease.lease = -1;
  EXPECT_EQ(store().txn({}, {negative_lease}).code(), Code::kInvalidArgument);
  std::vector<Op> many;
  for (size_t i = 0; i <= kMaxTxnOps; ++i) many.push_back(put_op(k("/k" + std::to_string(i)), "v"));
  EXPECT_EQ(store().txn({}, many).code(), Code::kInvalidArgument);
  EXPECT_EQ(store().txn({}, {put_op(k("/big"), std::string(kMaxTxnBytes, 'x'))}).code(),
            Code::kInvalidArgument);
  auto all = store().list(prefix());
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
  auto empty = store().txn({}, {});
  ASSERT_TRUE(empty.ok()) << empty.message();
  EXPECT_EQ(empty->revision, base());
  // The largest allowed txns go through: the most ops, and the most bytes.
  many.pop_back();
  auto most = store().txn({}, many);
  ASSERT_TRUE(most.ok()) << most.message();
  EXPECT_EQ(most->revision, base() + 1);
  const std::string big_key = k("/big");
  auto biggest =
      store().txn({}, {put_op(big_key, std::string(kMaxTxnBytes - big_key.size(), 'x'))});
  ASSERT_TRUE(biggest.ok()) << biggest.message();
  EXPECT_EQ((*store().get(big_key))->value.size(), kMaxTxnBytes - big_key.size());
}

TEST_P(StoreConformance, ListIsAPrefixRangeSortedByKey) {
  for (const char* key : {"/hosts/b", "/hosts/a", "/hosts0", "/hosts/", "/host", "/hosts/a/x",
                          "/hosts%", "/hosts_", "/zz"}) {
    ASSERT_TRUE(put(store(), k(key), std::string("v") + key).ok());
  }
  auto hosts = store().list(k("/hosts/"));
  ASSERT_TRUE(hosts.ok());
  // Not LIKE: '%' and '_' are plain bytes, and "/hosts0" (the range end) is outside.
  EXPECT_EQ(keys_of(*hosts), (std::vector<std::string>{k("/hosts/"), k("/hosts/a"), k("/hosts/a/x"),
                                                       k("/hosts/b")}));
  EXPECT_EQ((*hosts)[1].value, "v/hosts/a");
  EXPECT_EQ((*hosts)[1].mod_revision, base() + 2);
  auto all = store().list(prefix() + "/");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 9u);
  EXPECT_EQ(all->front().key, k("/host"));
  EXPECT_EQ(all->back().key, k("/zz"));
  EXPECT_TRUE(store().list(k("/nothing/"))->empty());
  // The whole store ("") holds this test's keys among any others, in order.
  auto everything = store().list("");
  ASSERT_TRUE(everything.ok());
  EXPECT_GE(everything->size(), 9u);
  for (size_t i = 1; i < everything->size(); ++i)
    EXPECT_LT((*everything)[i - 1].key, (*everything)[i].key);
}

TEST_P(StoreConformance, ListWithHighBytes) {
  // Keys of all 0xff bytes have no range end: the range is everything from the prefix up.
  const std::string ff("\xff\xff", 2);
  const std::string p = prefix();
  ASSERT_TRUE(put(store(), p + "a", "1").ok());
  ASSERT_TRUE(put(store(), ff + p, "2").ok());
  ASSERT_TRUE(put(store(), ff + p + "x", "3").ok());
  auto r = store().list(ff);
  ASSERT_TRUE(r.ok());
  std::vector<std::string> mine;
  for (const KeyValue& kv : *r)
    if (kv.key.rfind(ff + p, 0) == 0) mine.push_back(kv.key);
  EXPECT_EQ(mine, (std::vector<std::string>{ff + p, ff + p + "x"}));
  for (const KeyValue& kv : *r) EXPECT_EQ(kv.key.rfind(ff, 0), 0u) << kv.key;
  const std::string ax = p + "a\xff";
  ASSERT_TRUE(put(store(), ax, "4").ok());
  auto a = store().list(p + "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(keys_of(*a), (std::vector<std::string>{p + "a", ax}));  // not "\xff\xff..."
  ASSERT_TRUE(store().txn({}, {delete_op(ff + p), delete_op(ff + p + "x")}).ok());
}

TEST_P(StoreConformance, UpdateRetriesAndAborts) {
  const std::string key = k("/n");
  // Creates when absent.
  auto created = update(store(), key, [](const std::optional<KeyValue>& kv) {
    return Result<std::optional<std::string>>(std::optional<std::string>(kv ? "bad" : "1"));
  });
  ASSERT_TRUE(created.ok()) << created.message();
  EXPECT_EQ(created->value, "1");
  EXPECT_EQ(created->create_revision, created->mod_revision);

  // A concurrent writer between the read and the commit: retried on the new value.
  int calls = 0;
  auto bumped = update(store(), key, [&](const std::optional<KeyValue>& kv) {
    if (++calls == 1) {
      EXPECT_TRUE(put(store(), key, "10").ok());
    }
    return Result<std::optional<std::string>>(
        std::optional<std::string>(std::to_string(std::stoi(kv->value) + 1)));
  });
  ASSERT_TRUE(bumped.ok()) << bumped.message();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(bumped->value, "11");
  EXPECT_EQ(bumped->create_revision, created->create_revision);
  EXPECT_EQ((*store().get(key))->value, "11");

  // An error from the change aborts and writes nothing.
  auto aborted = update(store(), key, [](const std::optional<KeyValue>&) {
    return Result<std::optional<std::string>>(Status::invalid_argument("no"));
  });
  EXPECT_EQ(aborted.code(), Code::kInvalidArgument);
  EXPECT_EQ((*store().get(key))->value, "11");

  // Always contended: gives up with kConflict.
  auto contended = update(
      store(), key,
      [&](const std::optional<KeyValue>&) {
        EXPECT_TRUE(put(store(), key, "x").ok());
        return Result<std::optional<std::string>>(std::optional<std::string>("y"));
      },
      3);
  EXPECT_EQ(contended.code(), Code::kConflict);

  // nullopt deletes.
  auto deleted = update(store(), key, [](const std::optional<KeyValue>&) {
    return Result<std::optional<std::string>>(std::optional<std::string>());
  });
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->mod_revision, 0);
  EXPECT_FALSE(store().get(key)->has_value());
}

TEST_P(StoreConformance, ConcurrentUpdatesLoseNothing) {
  const std::string key = k("/counter");
  ASSERT_TRUE(put(store(), key, "0").ok());
  constexpr int kThreads = 4, kEach = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto r = update(
            store(), key,
            [](const std::optional<KeyValue>& kv) -> Result<std::optional<std::string>> {
              return std::optional<std::string>(std::to_string(std::stoll(kv->value) + 1));
            },
            1000);
        if (!r.ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto c = store().get(key);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->value, std::to_string(kThreads * kEach));
  // Every increment was one write (a lost compare writes nothing).
  EXPECT_EQ((*c)->mod_revision, base() + 1 + kThreads * kEach);
}

}  // namespace
}  // namespace nimbus::cloud
