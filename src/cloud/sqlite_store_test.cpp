#include "cloud/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cloud/store.h"

namespace nimbus::cloud {
namespace {

std::unique_ptr<Store> memory_store() {
  auto s = open_sqlite_store(":memory:");
  EXPECT_TRUE(s.ok()) << s.message();
  return std::move(*s);
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/nimbus-store-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

Op put_op(std::string key, std::string value) {
  return Op{Op::Kind::kPut, std::move(key), std::move(value)};
}
Op delete_op(std::string key) { return Op{Op::Kind::kDelete, std::move(key), ""}; }

TEST(SqliteStore, PutGetAndRevisionsAsEtcd) {
  auto store = memory_store();
  EXPECT_EQ(store->describe(), "sqlite::memory:");
  auto missing = store->get("/a");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  // A fresh store is at revision 1; the first write makes revision 2.
  auto r1 = put(*store, "/a", "one");
  ASSERT_TRUE(r1.ok()) << r1.message();
  EXPECT_EQ(*r1, 2);
  auto r2 = put(*store, "/b", "two");
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2, 3);
  auto r3 = put(*store, "/a", "uno");
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(*r3, 4);

  auto a = store->get("/a");
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->value, "uno");
  EXPECT_EQ((*a)->mod_revision, 4);
  EXPECT_EQ((*a)->create_revision, 2);  // kept across updates
  auto b = store->get("/b");
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->mod_revision, 3);
  EXPECT_EQ((*b)->create_revision, 3);
}

TEST(SqliteStore, ValuesAreBytes) {
  auto store = memory_store();
  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(put(*store, "/bin", binary).ok());
  ASSERT_TRUE(put(*store, "/empty", "").ok());
  auto v = store->get("/bin");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->value, binary);
  auto e = store->get("/empty");
  ASSERT_TRUE(e.ok() && e->has_value());  // an empty value is a key that exists
  EXPECT_EQ((*e)->value, "");
}

TEST(SqliteStore, CompareAndSwap) {
  auto store = memory_store();
  auto rev = put(*store, "/k", "v1");
  ASSERT_TRUE(rev.ok());
  // A stale revision fails and changes nothing.
  auto stale = put_if_revision(*store, "/k", "v2", *rev - 1);
  EXPECT_EQ(stale.code(), Code::kConflict);
  auto still = store->get("/k");
  ASSERT_TRUE(still.ok() && still->has_value());
  EXPECT_EQ((*still)->value, "v1");
  EXPECT_EQ((*still)->mod_revision, *rev);
  // The current revision wins, once.
  auto next = put_if_revision(*store, "/k", "v2", *rev);
  ASSERT_TRUE(next.ok()) << next.message();
  EXPECT_GT(*next, *rev);
  EXPECT_EQ(put_if_revision(*store, "/k", "v3", *rev).code(), Code::kConflict);
  // The raw txn reports failure with the store's revision, not an error.
  auto raw = store->txn({Compare{"/k", *rev}}, {put_op("/k", "v4")});
  ASSERT_TRUE(raw.ok());
  EXPECT_FALSE(raw->succeeded);
  EXPECT_EQ(raw->revision, *next);
  // Comparing an absent key on a non-zero revision fails too.
  auto absent = store->txn({Compare{"/nope", 5}}, {put_op("/nope", "x")});
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->succeeded);
  EXPECT_FALSE(store->get("/nope")->has_value());
}

TEST(SqliteStore, CreateOnly) {
  auto store = memory_store();
  auto first = put_if_absent(*store, "/instances/i-1", "a");
  ASSERT_TRUE(first.ok()) << first.message();
  auto second = put_if_absent(*store, "/instances/i-1", "b");
  EXPECT_EQ(second.code(), Code::kConflict);
  EXPECT_NE(second.message().find("exists"), std::string::npos) << second.message();
  EXPECT_EQ((*store->get("/instances/i-1"))->value, "a");
}

TEST(SqliteStore, DeleteForgetsTheKeyAndItsCreation) {
  auto store = memory_store();
  ASSERT_TRUE(put(*store, "/k", "v").ok());
  auto before = store->get("/k");
  ASSERT_TRUE(before.ok() && before->has_value());
  auto del = store->txn({Compare{"/k", (*before)->mod_revision}}, {delete_op("/k")});
  ASSERT_TRUE(del.ok() && del->succeeded);
  EXPECT_EQ(del->revision, (*before)->mod_revision + 1);
  EXPECT_FALSE(store->get("/k")->has_value());
  // Deleting what is not there succeeds without moving the revision (as etcd).
  auto again = store->txn({}, {delete_op("/k")});
  ASSERT_TRUE(again.ok() && again->succeeded);
  EXPECT_EQ(again->revision, del->revision);
  // Re-created: a new create_revision.
  auto re = put_if_absent(*store, "/k", "w");
  ASSERT_TRUE(re.ok());
  EXPECT_EQ((*store->get("/k"))->create_revision, *re);
}

TEST(SqliteStore, MultiOpTxnIsAtomic) {
  auto store = memory_store();
  ASSERT_TRUE(put(*store, "/hosts/h1/alloc", "4").ok());
  ASSERT_TRUE(put(*store, "/old", "x").ok());
  auto alloc = *store->get("/hosts/h1/alloc");
  // One failing compare among several: nothing of the ops happens.
  auto failed =
      store->txn({Compare{"/hosts/h1/alloc", (*alloc).mod_revision}, Compare{"/i/1", 7}},
                 {put_op("/hosts/h1/alloc", "6"), put_op("/i/1", "rec"), delete_op("/old")});
  ASSERT_TRUE(failed.ok());
  EXPECT_FALSE(failed->succeeded);
  EXPECT_EQ((*store->get("/hosts/h1/alloc"))->value, "4");
  EXPECT_FALSE(store->get("/i/1")->has_value());
  EXPECT_TRUE(store->get("/old")->has_value());

  // All compares hold: every op at the one same revision.
  auto ok = store->txn({Compare{"/hosts/h1/alloc", (*alloc).mod_revision}, Compare{"/i/1", 0}},
                       {put_op("/hosts/h1/alloc", "6"), put_op("/i/1", "rec"), delete_op("/old")});
  ASSERT_TRUE(ok.ok() && ok->succeeded);
  auto a = *store->get("/hosts/h1/alloc");
  auto i = *store->get("/i/1");
  EXPECT_EQ(a->value, "6");
  EXPECT_EQ(i->value, "rec");
  EXPECT_EQ(a->mod_revision, ok->revision);
  EXPECT_EQ(i->mod_revision, ok->revision);
  EXPECT_FALSE(store->get("/old")->has_value());
}

TEST(SqliteStore, BadTxnsAreRefusedAndChangeNothing) {
  auto store = memory_store();
  EXPECT_EQ(store->txn({}, {put_op("", "v")}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store->txn({Compare{"", 0}}, {}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store->txn({Compare{"/a", -1}}, {}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store->txn({}, {put_op("/a", "1"), put_op("/b", "2"), delete_op("/a")}).code(),
            Code::kInvalidArgument);
  std::vector<Op> many;
  for (size_t i = 0; i <= kMaxTxnOps; ++i) many.push_back(put_op("/k" + std::to_string(i), "v"));
  EXPECT_EQ(store->txn({}, many).code(), Code::kInvalidArgument);
  EXPECT_EQ(store->txn({}, {put_op("/big", std::string(kMaxTxnBytes, 'x'))}).code(),
            Code::kInvalidArgument);
  auto all = store->list("");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
  // The largest allowed txn goes through.
  many.pop_back();
  EXPECT_TRUE(store->txn({}, many).ok());
}

TEST(SqliteStore, ListIsAPrefixRangeSortedByKey) {
  auto store = memory_store();
  for (const char* k : {"/hosts/b", "/hosts/a", "/hosts0", "/hosts/", "/host", "/hosts/a/x",
                        "/hosts%", "/hosts_", "/zz"}) {
    ASSERT_TRUE(put(*store, k, std::string("v") + k).ok());
  }
  auto hosts = store->list("/hosts/");
  ASSERT_TRUE(hosts.ok());
  std::vector<std::string> keys;
  for (const KeyValue& kv : *hosts) keys.push_back(kv.key);
  // Not LIKE: '%' and '_' are plain bytes, and "/hosts0" (the range end) is outside.
  EXPECT_EQ(keys, (std::vector<std::string>{"/hosts/", "/hosts/a", "/hosts/a/x", "/hosts/b"}));
  EXPECT_EQ((*hosts)[1].value, "v/hosts/a");
  auto all = store->list("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 9u);
  EXPECT_EQ(all->front().key, "/host");
  EXPECT_EQ(all->back().key, "/zz");
  EXPECT_TRUE(store->list("/nothing/")->empty());
}

TEST(SqliteStore, ListWithHighBytes) {
  auto store = memory_store();
  const std::string ff("\xff\xff", 2);
  ASSERT_TRUE(put(*store, "a", "1").ok());
  ASSERT_TRUE(put(*store, ff, "2").ok());
  ASSERT_TRUE(put(*store, ff + "x", "3").ok());
  auto r = store->list(ff);  // no range end: everything from the prefix up
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].key, ff);
  const std::string ax("a\xff", 2);
  ASSERT_TRUE(put(*store, ax, "4").ok());
  auto a = store->list("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size(), 2u);  // "a" and "a\xff", not "\xff\xff"
}

TEST(SqliteStore, PrefixEnd) {
  EXPECT_EQ(prefix_end("/nimbus/hosts/"), "/nimbus/hosts0");
  EXPECT_EQ(prefix_end("a"), "b");
  EXPECT_EQ(prefix_end(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(prefix_end(std::string("\xff", 1)), "");
  EXPECT_EQ(prefix_end(""), "");
}

TEST(SqliteStore, UpdateRetriesAndAborts) {
  auto store = memory_store();
  // Creates when absent.
  auto created = update(*store, "/n", [](const std::optional<KeyValue>& kv) {
    return Result<std::optional<std::string>>(std::optional<std::string>(kv ? "bad" : "1"));
  });
  ASSERT_TRUE(created.ok()) << created.message();
  EXPECT_EQ(created->value, "1");
  EXPECT_EQ(created->create_revision, created->mod_revision);

  // A concurrent writer between the read and the commit: retried on the new value.
  int calls = 0;
  auto bumped = update(*store, "/n", [&](const std::optional<KeyValue>& kv) {
    if (++calls == 1) {
      EXPECT_TRUE(put(*store, "/n", "10").ok());
    }
    return Result<std::optional<std::string>>(
        std::optional<std::string>(std::to_string(std::stoi(kv->value) + 1)));
  });
  ASSERT_TRUE(bumped.ok()) << bumped.message();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(bumped->value, "11");
  EXPECT_EQ(bumped->create_revision, created->create_revision);
  EXPECT_EQ((*store->get("/n"))->value, "11");

  // An error from the change aborts and writes nothing.
  auto aborted = update(*store, "/n", [](const std::optional<KeyValue>&) {
    return Result<std::optional<std::string>>(Status::invalid_argument("no"));
  });
  EXPECT_EQ(aborted.code(), Code::kInvalidArgument);
  EXPECT_EQ((*store->get("/n"))->value, "11");

  // Always contended: gives up with kConflict.
  auto contended = update(
      *store, "/n",
      [&](const std::optional<KeyValue>&) {
        EXPECT_TRUE(put(*store, "/n", "x").ok());
        return Result<std::optional<std::string>>(std::optional<std::string>("y"));
      },
      3);
  EXPECT_EQ(contended.code(), Code::kConflict);

  // nullopt deletes.
  auto deleted = update(*store, "/n", [](const std::optional<KeyValue>&) {
    return Result<std::optional<std::string>>(std::optional<std::string>());
  });
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->mod_revision, 0);
  EXPECT_FALSE(store->get("/n")->has_value());
}

TEST(SqliteStore, ConcurrentUpdatesLoseNothing) {
  TempDir dir;
  auto opened = open_sqlite_store(dir.path + "/cloud.db");
  ASSERT_TRUE(opened.ok()) << opened.message();
  Store& store = **opened;
  ASSERT_TRUE(put(store, "/counter", "0").ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto r = update(
            store, "/counter",
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
  auto c = store.get("/counter");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->value, "800");
  // Every increment was one write: revision 1, the initial put, then 800 updates.
  EXPECT_EQ((*c)->mod_revision, 802);
}

TEST(SqliteStore, PersistsAcrossReopenAndIsPrivate) {
  TempDir dir;
  const std::string path = dir.path + "/cloud.db";
  int64_t rev = 0;
  {
    auto s = open_sqlite_store(path);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ((*s)->describe(), "sqlite:" + path);
    ASSERT_TRUE(put(**s, "/a", "1").ok());
    auto r = put(**s, "/b", "2");
    ASSERT_TRUE(r.ok());
    rev = *r;
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto s = open_sqlite_store(path);
  ASSERT_TRUE(s.ok()) << s.message();
  auto all = (*s)->list("/");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].value, "2");
  EXPECT_EQ((*all)[1].mod_revision, rev);
  // The revision counter continues where it was.
  auto next = put(**s, "/c", "3");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, rev + 1);
}

TEST(SqliteStore, UnwritablePathIsAnError) {
  auto s = open_sqlite_store("/nonexistent-dir/sub/cloud.db");
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(open_sqlite_store("").code(), Code::kInvalidArgument);
}

// A writer process killed with SIGKILL at random moments: after each kill the database
// opens, passes SQLite's integrity check, holds /counter and /mirror from the same txn (a
// half txn would leave them apart), and has every txn the writer saw committed (it reports
// each on a pipe after txn() returns).
TEST(SqliteStore, SurvivesKillNineMidWrite) {
  TempDir dir;
  const std::string path = dir.path + "/cloud.db";
  {
    auto s = open_sqlite_store(path);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->txn({}, {put_op("/counter", "0"), put_op("/mirror", "0")}).ok());
  }
  std::mt19937 rng(12345);
  long long last_reported = 0;
  for (int round = 0; round < 12; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto s = open_sqlite_store(path);
      if (!s.ok()) ::_exit(2);
      for (;;) {
        auto c = (*s)->get("/counter");
        if (!c.ok() || !c->has_value()) ::_exit(3);
        const long long n = std::stoll((*c)->value) + 1;
        const std::string v = std::to_string(n);
        // A long value: the txn spans several pages, so a kill can land mid-write.
        auto r =
            (*s)->txn({Compare{"/counter", (*c)->mod_revision}},
                      {put_op("/counter", v), put_op("/blob", std::string(20000, 'a' + n % 26)),
                       put_op("/mirror", v)});
        if (!r.ok() || !r->succeeded) ::_exit(4);
        if (::write(fds[1], &n, sizeof n) != sizeof n) ::_exit(5);
      }
    }
    ::close(fds[1]);
    // Once the writer is committing (its first report), kill it at a random moment.
    long long n;
    ASSERT_EQ(::read(fds[0], &n, sizeof n), static_cast<ssize_t>(sizeof n))
        << "the writer never committed";
    last_reported = n;
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30000));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer exited early with " << WEXITSTATUS(status);
    while (::read(fds[0], &n, sizeof n) == sizeof n) last_reported = n;
    ::close(fds[0]);

    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_stmt* check = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &check, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)), "ok");
    sqlite3_finalize(check);
    sqlite3_close(raw);

    auto s = open_sqlite_store(path);
    ASSERT_TRUE(s.ok()) << s.message();
    auto counter = (*s)->get("/counter");
    auto mirror = (*s)->get("/mirror");
    auto blob = (*s)->get("/blob");
    ASSERT_TRUE(counter.ok() && counter->has_value() && mirror.ok() && mirror->has_value());
    const long long value = std::stoll((*counter)->value);
    EXPECT_EQ((*counter)->value, (*mirror)->value);
    EXPECT_EQ((*counter)->mod_revision, (*mirror)->mod_revision);
    if (value > 0) {
      ASSERT_TRUE(blob.ok() && blob->has_value());
      EXPECT_EQ((*blob)->value, std::string(20000, 'a' + value % 26));
      EXPECT_EQ((*blob)->mod_revision, (*counter)->mod_revision);
    }
    // Nothing the writer saw committed is lost (it may have committed one more unreported).
    EXPECT_GE(value, last_reported);
    EXPECT_LE(value, last_reported + 1);
    last_reported = value;
  }
  std::printf("SurvivesKillNineMidWrite: %lld txns committed over 12 kills\n", last_reported);
  EXPECT_GE(last_reported, 12);
}

}  // namespace
}  // namespace nimbus::cloud
