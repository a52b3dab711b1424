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
#include "cloud/store_conformance_test.h"

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

// The shared behaviour (store_conformance_test.cpp), each test on a fresh in-memory store.
std::unique_ptr<Store> conformance_store;
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformance,
                         ::testing::Values(StoreBackend{"Sqlite",
                                                        []() -> Result<Store*> {
                                                          auto s = open_sqlite_store(":memory:");
                                                          if (!s.ok()) return s.status();
                                                          conformance_store = std::move(*s);
                                                          return conformance_store.get();
                                                        },
                                                        []() -> Result<int64_t> {
                                                          auto s = open_sqlite_store(":memory:");
                                                          if (!s.ok()) return s.status();
                                                          auto r = (*s)->txn({}, {});
                                                          if (!r.ok()) return r.status();
                                                          return r->revision;
                                                        }}));

TEST(SqliteStore, DescribesItself) { EXPECT_EQ(memory_store()->describe(), "sqlite::memory:"); }

// Leases and watches are etcd's: SQLite says so rather than pretending.
TEST(SqliteStore, NoLeasesOrWatches) {
  auto store = memory_store();
  EXPECT_EQ(store->lease_grant(10).code(), Code::kUnimplemented);
  EXPECT_EQ(store->lease_keep_alive(1).code(), Code::kUnimplemented);
  EXPECT_EQ(store->lease_revoke(1).code(), Code::kUnimplemented);
  auto w = store->watch("/", 0, [](Result<std::vector<WatchEvent>>) {});
  EXPECT_EQ(w.code(), Code::kUnimplemented);
  EXPECT_NE(w.message().find("poll"), std::string::npos) << w.message();
  Op leased = put_op("/a", "1");
  leased.lease = 5;
  auto r = store->txn({}, {leased});
  EXPECT_EQ(r.code(), Code::kUnimplemented);
  EXPECT_FALSE(store->get("/a")->has_value());
}

TEST(SqliteStore, PrefixEnd) {
  EXPECT_EQ(prefix_end("/nimbus/hosts/"), "/nimbus/hosts0");
  EXPECT_EQ(prefix_end("a"), "b");
  EXPECT_EQ(prefix_end(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(prefix_end(std::string("\xff", 1)), "");
  EXPECT_EQ(prefix_end(""), "");
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
