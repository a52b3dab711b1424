#include "host/registry.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

namespace nimbus::host {
namespace {

using nlohmann::json;

// 2: vms.metadata (the VM configuration's metadata section as JSON, "" for none).
// 3: vms.network (the VM's private network as JSON, "" for the host network).
// 4: vms.macs ({"user", "host"} as JSON, "" for MACs derived from the slot).
constexpr int kSchemaVersion = 4;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS vms (
  name TEXT PRIMARY KEY,
  image TEXT NOT NULL,
  cpus INTEGER NOT NULL,
  memory_mib INTEGER NOT NULL,
  disk_mib INTEGER NOT NULL,
  forwards TEXT NOT NULL,
  restart_policy TEXT NOT NULL,
  desired_state TEXT NOT NULL,
  state TEXT NOT NULL,
  slot INTEGER NOT NULL UNIQUE,
  pid INTEGER NOT NULL,
  pid_start INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  started_at TEXT NOT NULL,
  last_exit TEXT NOT NULL,
  restarts INTEGER NOT NULL,
  metadata TEXT NOT NULL DEFAULT '',
  network TEXT NOT NULL DEFAULT '',
  macs TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS snapshots (
  vm TEXT NOT NULL REFERENCES vms(name) ON DELETE CASCADE,
  name TEXT NOT NULL,
  created_at TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  cpus INTEGER NOT NULL,
  memory_mib INTEGER NOT NULL,
  PRIMARY KEY (vm, name)
);
)sql";

// One prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) s_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return s_ != nullptr; }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(s_); }
  int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  std::string text(int col) const {
    const unsigned char* t = sqlite3_column_text(s_, col);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_, col))
             : std::string();
  }
  Status error(const char* what) const {
    return Status::error(fmt::format("state database: {}: {}", what, sqlite3_errmsg(db_)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

std::string forwards_to_text(const std::vector<config::PortForward>& forwards) {
  json a = json::array();
  for (const config::PortForward& f : forwards) {
    a.push_back({{"protocol", f.protocol},
                 {"host_address", f.host_address},
                 {"host_port", f.host_port},
                 {"guest_port", f.guest_port}});
  }
  return a.dump();
}

std::vector<config::PortForward> forwards_from_text(const std::string& text) {
  std::vector<config::PortForward> out;
  json a = json::parse(text, nullptr, false);
  if (!a.is_array()) return out;
  for (const json& j : a) {
    if (!j.is_object()) continue;
    config::PortForward f;
    f.protocol = j.value("protocol", std::string("tcp"));
    f.host_address = j.value("host_address", std::string("0.0.0.0"));
    f.host_port = j.value("host_port", uint16_t{0});
    f.guest_port = j.value("guest_port", uint16_t{0});
    out.push_back(f);
  }
  return out;
}

constexpr const char* kVmColumns =
    "name, image, cpus, memory_mib, disk_mib, forwards, restart_policy, desired_state, state, "
    "slot, pid, "
    "pid_start, uid, created_at, started_at, last_exit, restarts, metadata, network, macs";

std::string metadata_to_text(const std::optional<config::MetadataConfig>& m) {
  return m ? config::to_json(*m).dump() : std::string();
}

// What this nimbusd wrote; anything else reads as no metadata.
std::optional<config::MetadataConfig> metadata_from_text(const std::string& text) {
  if (text.empty()) return std::nullopt;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  auto m = config::parse_metadata(j);
  if (!m.ok()) return std::nullopt;
  return *m;
}

std::string macs_to_text(const VmRecord& v) {
  if (v.mac_user.empty() && v.mac_host.empty()) return std::string();
  return json{{"user", v.mac_user}, {"host", v.mac_host}}.dump();
}

void macs_from_text(const std::string& text, VmRecord& v) {
  if (text.empty()) return;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  if (j.contains("user") && j["user"].is_string()) v.mac_user = j["user"].get<std::string>();
  if (j.contains("host") && j["host"].is_string()) v.mac_host = j["host"].get<std::string>();
}

VmRecord read_vm(const Stmt& s) {
  VmRecord v;
  v.name = s.text(0);
  v.image = s.text(1);
  v.cpus = static_cast<unsigned>(s.i64(2));
  v.memory_mib = static_cast<uint64_t>(s.i64(3));
  v.disk_mib = static_cast<uint64_t>(s.i64(4));
  v.forwards = forwards_from_text(s.text(5));
  v.restart_policy = s.text(6);
  v.desired_state = s.text(7);
  v.state = s.text(8);
  v.slot = static_cast<unsigned>(s.i64(9));
  v.pid = s.i64(10);
  v.pid_start = static_cast<uint64_t>(s.i64(11));
  v.uid = static_cast<uint32_t>(s.i64(12));
  v.created_at = s.text(13);
  v.started_at = s.text(14);
  v.last_exit = s.text(15);
  v.restarts = static_cast<unsigned>(s.i64(16));
  v.metadata = metadata_from_text(s.text(17));
  v.network = network_from_text(s.text(18));
  macs_from_text(s.text(19), v);
  return v;
}

// Binds the 20 columns in kVmColumns order.
void bind_vm(Stmt& s, const VmRecord& v) {
  s.bind(1, v.name)
      .bind(2, v.image)
      .bind(3, static_cast<int64_t>(v.cpus))
      .bind(4, static_cast<int64_t>(v.memory_mib))
      .bind(5, static_cast<int64_t>(v.disk_mib))
      .bind(6, forwards_to_text(v.forwards))
      .bind(7, v.restart_policy)
      .bind(8, v.desired_state)
      .bind(9, v.state)
      .bind(10, static_cast<int64_t>(v.slot))
      .bind(11, v.pid)
      .bind(12, static_cast<int64_t>(v.pid_start))
      .bind(13, static_cast<int64_t>(v.uid))
      .bind(14, v.created_at)
      .bind(15, v.started_at)
      .bind(16, v.last_exit)
      .bind(17, static_cast<int64_t>(v.restarts))
      .bind(18, metadata_to_text(v.metadata))
      .bind(19, network_to_text(v.network))
      .bind(20, macs_to_text(v));
}

// The database (every VM's definition) is nimbusd's alone: mode 0600 for it and for the
// files SQLite keeps beside it (which take the database's mode when SQLite creates them).
// Files left with wider modes by an older nimbusd are narrowed too.
Status restrict_database_files(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return Status::error(
        fmt::format("cannot open the state database '{}': {}", path, std::strerror(errno)));
  const int rc = ::fchmod(fd, 0600);
  const int err = errno;
  ::close(fd);
  if (rc != 0)
    return Status::error(
        fmt::format("cannot make '{}' private (mode 0600): {}", path, std::strerror(err)));
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    const std::string side = path + suffix;
    if (::chmod(side.c_str(), 0600) != 0 && errno != ENOENT) {
      return Status::error(
          fmt::format("cannot make '{}' private (mode 0600): {}", side, std::strerror(errno)));
    }
  }
  return {};
}

}  // namespace

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<std::unique_ptr<Registry>> Registry::open(const std::string& path) {
  if (Status s = restrict_database_files(path); !s.ok()) return s;
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status::error(fmt::format("cannot open the state database '{}': {}", path, msg));
  }
  std::unique_ptr<Registry> r(new Registry(db));
  sqlite3_busy_timeout(db, 5000);
  // WAL: a reader never waits for the writer; FULL: a committed change survives a crash.
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    if (Status s = r->exec(pragma); !s.ok()) return s;
  }
  // The -wal and -shm files exist now; make sure of their mode whatever the umask was.
  if (Status s = restrict_database_files(path); !s.ok()) return s;
  Stmt v(db, "PRAGMA user_version");
  if (!v.ok() || v.step() != SQLITE_ROW) return v.error("reading the schema version");
  const int64_t version = v.i64(0);
  if (version > kSchemaVersion) {
    return Status::error(
        fmt::format("the state database '{}' has schema version {}, newer than this nimbusd ({}); "
                    "run a newer nimbusd",
                    path, version, kSchemaVersion));
  }
  if (Status s = r->exec(kSchema); !s.ok()) return s;
  // Version 1 databases lack vms.metadata, 1 and 2 vms.network (CREATE TABLE IF NOT EXISTS
  // kept their table).
  if (version == 1) {
    if (Status s = r->exec("ALTER TABLE vms ADD COLUMN metadata TEXT NOT NULL DEFAULT ''"); !s.ok())
      return s;
  }
  if (version == 1 || version == 2) {
    Stmt has(db, "SELECT 1 FROM pragma_table_info('vms') WHERE name = 'network'");
    if (!has.ok()) return has.error("reading the schema");
    const int rc = has.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return has.error("reading the schema");
    if (rc == SQLITE_DONE) {
      if (Status s = r->exec("ALTER TABLE vms ADD COLUMN network TEXT NOT NULL DEFAULT ''");
          !s.ok())
        return s;
    }
  }
  if (version >= 1 && version <= 3) {
    Stmt has(db, "SELECT 1 FROM pragma_table_info('vms') WHERE name = 'macs'");
    if (!has.ok()) return has.error("reading the schema");
    const int rc = has.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return has.error("reading the schema");
    if (rc == SQLITE_DONE) {
      if (Status s = r->exec("ALTER TABLE vms ADD COLUMN macs TEXT NOT NULL DEFAULT ''"); !s.ok())
        return s;
    }
  }
  if (Status s = r->exec(fmt::format("PRAGMA user_version={}", kSchemaVersion).c_str()); !s.ok())
    return s;
  return r;
}

Registry::~Registry() { sqlite3_close(db_); }

Status Registry::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return Status::error("state database: " + msg);
  }
  return {};
}

Result<std::vector<VmRecord>> Registry::list_vms() {
  Stmt s(db_, fmt::format("SELECT {} FROM vms ORDER BY created_at, name", kVmColumns).c_str());
  if (!s.ok()) return s.error("listing VMs");
  std::vector<VmRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_vm(s));
  if (rc != SQLITE_DONE) return s.error("listing VMs");
  return out;
}

Result<std::optional<VmRecord>> Registry::get_vm(const std::string& name) {
  Stmt s(db_, fmt::format("SELECT {} FROM vms WHERE name = ?1", kVmColumns).c_str());
  if (!s.ok()) return s.error("reading a VM");
  s.bind(1, name);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<VmRecord>(read_vm(s));
  if (rc == SQLITE_DONE) return std::optional<VmRecord>();
  return s.error("reading a VM");
}

Status Registry::insert_vm(const VmRecord& vm) {
  Stmt s(db_,
         fmt::format("INSERT INTO vms ({}) VALUES "
                     "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)",
                     kVmColumns)
             .c_str());
  if (!s.ok()) return s.error("adding a VM");
  bind_vm(s, vm);
  const int rc = s.step();
  if (rc == SQLITE_CONSTRAINT)
    return Status::error(fmt::format("a VM named '{}' already exists", vm.name));
  if (rc != SQLITE_DONE) return s.error("adding a VM");
  return {};
}

Status Registry::update_vm(const VmRecord& vm) {
  Stmt s(db_,
         "UPDATE vms SET image=?2, cpus=?3, memory_mib=?4, disk_mib=?5, forwards=?6, "
         "restart_policy=?7, "
         "desired_state=?8, state=?9, slot=?10, pid=?11, pid_start=?12, uid=?13, created_at=?14, "
         "started_at=?15, "
         "last_exit=?16, restarts=?17, metadata=?18, network=?19, macs=?20 WHERE name=?1");
  if (!s.ok()) return s.error("updating a VM");
  bind_vm(s, vm);
  if (s.step() != SQLITE_DONE) return s.error("updating a VM");
  if (sqlite3_changes(db_) != 1) return Status::error(fmt::format("no VM named '{}'", vm.name));
  return {};
}

Status Registry::delete_vm(const std::string& name) {
  Stmt s(db_, "DELETE FROM vms WHERE name = ?1");
  if (!s.ok()) return s.error("deleting a VM");
  s.bind(1, name);
  if (s.step() != SQLITE_DONE) return s.error("deleting a VM");
  if (sqlite3_changes(db_) != 1) return Status::error(fmt::format("no VM named '{}'", name));
  return {};
}

Result<std::vector<SnapshotRecord>> Registry::list_snapshots(const std::string& vm) {
  Stmt s(db_,
         "SELECT vm, name, created_at, size_bytes, cpus, memory_mib FROM snapshots WHERE vm = ?1 "
         "ORDER BY created_at, name");
  if (!s.ok()) return s.error("listing snapshots");
  s.bind(1, vm);
  std::vector<SnapshotRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    SnapshotRecord r;
    r.vm = s.text(0);
    r.name = s.text(1);
    r.created_at = s.text(2);
    r.size_bytes = static_cast<uint64_t>(s.i64(3));
    r.cpus = static_cast<unsigned>(s.i64(4));
    r.memory_mib = static_cast<uint64_t>(s.i64(5));
    out.push_back(r);
  }
  if (rc != SQLITE_DONE) return s.error("listing snapshots");
  return out;
}

Status Registry::insert_snapshot(const SnapshotRecord& r) {
  Stmt s(db_,
         "INSERT INTO snapshots (vm, name, created_at, size_bytes, cpus, memory_mib) VALUES "
         "(?1,?2,?3,?4,?5,?6)");
  if (!s.ok()) return s.error("adding a snapshot");
  s.bind(1, r.vm).bind(2, r.name).bind(3, r.created_at).bind(4, static_cast<int64_t>(r.size_bytes));
  s.bind(5, static_cast<int64_t>(r.cpus)).bind(6, static_cast<int64_t>(r.memory_mib));
  const int rc = s.step();
  if (rc == SQLITE_CONSTRAINT) {
    return Status::error(fmt::format("VM '{}' already has a snapshot named '{}'", r.vm, r.name));
  }
  if (rc != SQLITE_DONE) return s.error("adding a snapshot");
  return {};
}

Status Registry::delete_snapshot(const std::string& vm, const std::string& name) {
  Stmt s(db_, "DELETE FROM snapshots WHERE vm = ?1 AND name = ?2");
  if (!s.ok()) return s.error("deleting a snapshot");
  s.bind(1, vm).bind(2, name);
  if (s.step() != SQLITE_DONE) return s.error("deleting a snapshot");
  if (sqlite3_changes(db_) != 1)
    return Status::error(fmt::format("VM '{}' has no snapshot named '{}'", vm, name));
  return {};
}

}  // namespace nimbus::host
