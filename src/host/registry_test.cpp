#include "host/registry.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace nimbus::host {
namespace {

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nimbus-registry-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string db() const { return (dir_ / "nimbus.db").string(); }
  std::filesystem::path dir_;
};

VmRecord sample(const std::string& name, unsigned slot) {
  VmRecord v;
  v.name = name;
  v.image = "default";
  v.cpus = 2;
  v.memory_mib = 384;
  v.disk_mib = 1024;
  v.forwards = {config::PortForward{"tcp", "127.0.0.1", 8080, "", 80},
                config::PortForward{"udp", "0.0.0.0", 5353, "", 53}};
  v.restart_policy = "on-failure";
  v.desired_state = "running";
  v.state = "starting";
  v.slot = slot;
  v.pid = 4242;
  v.pid_start = 123456789;
  v.uid = 200000 + slot;
  v.created_at = "2026-11-22T10:00:00Z";
  v.last_exit = "signal 9";
  v.restarts = 3;
  return v;
}

TEST_F(RegistryTest, RoundTripsEveryFieldAcrossReopen) {
  {
    auto r = Registry::open(db());
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_TRUE((*r)->insert_vm(sample("web1", 2)).ok());
  }
  auto r = Registry::open(db());
  ASSERT_TRUE(r.ok()) << r.message();
  auto got = (*r)->get_vm("web1");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  const VmRecord& v = **got;
  const VmRecord want = sample("web1", 2);
  EXPECT_EQ(v.image, want.image);
  EXPECT_EQ(v.cpus, 2u);
  EXPECT_EQ(v.memory_mib, 384u);
  EXPECT_EQ(v.disk_mib, 1024u);
  ASSERT_EQ(v.forwards.size(), 2u);
  EXPECT_EQ(v.forwards[0].host_address, "127.0.0.1");
  EXPECT_EQ(v.forwards[0].host_port, 8080);
  EXPECT_EQ(v.forwards[1].protocol, "udp");
  EXPECT_EQ(v.forwards[1].guest_port, 53);
  EXPECT_EQ(v.restart_policy, "on-failure");
  EXPECT_EQ(v.desired_state, "running");
  EXPECT_EQ(v.state, "starting");
  EXPECT_EQ(v.slot, 2u);
  EXPECT_EQ(v.pid, 4242);
  EXPECT_EQ(v.pid_start, 123456789u);
  EXPECT_EQ(v.uid, 200002u);
  EXPECT_EQ(v.last_exit, "signal 9");
  EXPECT_EQ(v.restarts, 3u);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// nimbus.db holds every VM's definition: nobody but nimbusd's user may read it, whatever
// the umask, and files an older nimbusd left readable are fixed at open.
TEST_F(RegistryTest, DatabaseFilesArePrivate) {
  const mode_t old_umask = ::umask(022);
  {
    auto r = Registry::open(db());
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_TRUE((*r)->insert_vm(sample("web1", 2)).ok());
    EXPECT_EQ(mode_of(db()), 0600u);
    ASSERT_TRUE(std::filesystem::exists(db() + "-wal"));
    EXPECT_EQ(mode_of(db() + "-wal"), 0600u);
    EXPECT_EQ(mode_of(db() + "-shm"), 0600u);
  }
  ::umask(old_umask);
  // An existing world-readable database and journal.
  ASSERT_EQ(::chmod(db().c_str(), 0644), 0);
  { std::ofstream(db() + "-journal") << ""; }
  ASSERT_EQ(::chmod((db() + "-journal").c_str(), 0666), 0);
  auto r = Registry::open(db());
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(mode_of(db()), 0600u);
  EXPECT_EQ(mode_of(db() + "-journal"), 0600u);
  auto got = (*r)->get_vm("web1");
  ASSERT_TRUE(got.ok() && got->has_value()) << "the data is still there";
}

TEST_F(RegistryTest, DuplicateNameIsRefusedAndChangesNothing) {
  auto r = Registry::open(db());
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*r)->insert_vm(sample("a", 2)).ok());
  VmRecord dup = sample("a", 3);
  dup.cpus = 7;
  Status s = (*r)->insert_vm(dup);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("already exists"), std::string::npos);
  EXPECT_EQ((**(*r)->get_vm("a")).cpus, 2u);
  EXPECT_EQ((*r)->list_vms()->size(), 1u);
}

TEST_F(RegistryTest, UpdateAndDelete) {
  auto r = Registry::open(db());
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*r)->insert_vm(sample("a", 2)).ok());
  ASSERT_TRUE((*r)->insert_vm(sample("b", 3)).ok());
  VmRecord a = **(*r)->get_vm("a");
  a.state = "stopped";
  a.pid = 0;
  ASSERT_TRUE((*r)->update_vm(a).ok());
  EXPECT_EQ((**(*r)->get_vm("a")).state, "stopped");
  EXPECT_FALSE((*r)->update_vm(sample("missing", 9)).ok());
  ASSERT_TRUE((*r)->delete_vm("a").ok());
  EXPECT_FALSE((*r)->get_vm("a")->has_value());
  EXPECT_FALSE((*r)->delete_vm("a").ok());
  ASSERT_EQ((*r)->list_vms()->size(), 1u);
}

TEST_F(RegistryTest, SnapshotsBelongToTheirVm) {
  auto r = Registry::open(db());
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*r)->insert_vm(sample("a", 2)).ok());
  SnapshotRecord s{"a", "s1", "2026-11-22T10:00:00Z", 5000, 2, 384};
  ASSERT_TRUE((*r)->insert_snapshot(s).ok());
  EXPECT_FALSE((*r)->insert_snapshot(s).ok());
  SnapshotRecord orphan{"nope", "s1", "2026-11-22T10:00:00Z", 1, 1, 1};
  EXPECT_FALSE((*r)->insert_snapshot(orphan).ok());
  auto list = (*r)->list_snapshots("a");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].size_bytes, 5000u);
  EXPECT_EQ((*list)[0].memory_mib, 384u);
  ASSERT_TRUE((*r)->delete_vm("a").ok());
  EXPECT_TRUE((*r)->list_snapshots("a")->empty());
}

TEST_F(RegistryTest, KeepsThePrivateNetworkAndUpgradesAVersion2Database) {
  {
    // A version 2 database (no network column) with one VM in it.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db().c_str(), &raw), SQLITE_OK);
    const char* v2 =
        "CREATE TABLE vms (name TEXT PRIMARY KEY, image TEXT NOT NULL, cpus INTEGER NOT NULL, "
        "memory_mib INTEGER NOT NULL, disk_mib INTEGER NOT NULL, forwards TEXT NOT NULL, "
        "restart_policy TEXT NOT NULL, desired_state TEXT NOT NULL, state TEXT NOT NULL, "
        "slot INTEGER NOT NULL UNIQUE, pid INTEGER NOT NULL, pid_start INTEGER NOT NULL, "
        "uid INTEGER NOT NULL, created_at TEXT NOT NULL, started_at TEXT NOT NULL, "
        "last_exit TEXT NOT NULL, restarts INTEGER NOT NULL, metadata TEXT NOT NULL DEFAULT '');"
        "INSERT INTO vms VALUES ('old', 'default', 1, 128, 64, '[]', 'no', 'stopped', 'stopped', "
        "2, 0, 0, 0, 'x', '', '', 0, '');"
        "PRAGMA user_version=2;";
    ASSERT_EQ(sqlite3_exec(raw, v2, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  auto r = Registry::open(db());
  ASSERT_TRUE(r.ok()) << r.message();
  auto old = (*r)->get_vm("old");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_FALSE((**old).network.has_value());
  VmRecord a = sample("a", 3);
  a.network = VmNetwork{100, "172.31.16.5/20", "172.31.16.1", 1450};
  ASSERT_TRUE((*r)->insert_vm(a).ok());
  EXPECT_EQ((**(*r)->get_vm("a")).network, a.network);
  a.network->mtu = 1400;
  ASSERT_TRUE((*r)->update_vm(a).ok());
  EXPECT_EQ((**(*r)->get_vm("a")).network, a.network);
}

TEST_F(RegistryTest, RefusesANewerSchemaAndAFileThatIsNotADatabase) {
  {
    auto r = Registry::open(db());
    ASSERT_TRUE(r.ok());
  }
  {
    // Simulate a future nimbusd having upgraded the file.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db().c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  auto r = Registry::open(db());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("newer"), std::string::npos);

  const std::string junk = (dir_ / "junk.db").string();
  FILE* f = std::fopen(junk.c_str(), "w");
  std::fputs("this is not a database, just some text that is long enough to have a header", f);
  std::fclose(f);
  auto j = Registry::open(junk);
  EXPECT_FALSE(j.ok());
}

}  // namespace
}  // namespace nimbus::host
