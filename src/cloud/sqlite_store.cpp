#include "cloud/sqlite_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace nimbus::cloud {
namespace {

constexpr int kSchemaVersion = 1;

// Keys and values are BLOBs, so keys compare bytewise (memcmp) as etcd's do. meta holds
// the global revision in its one row.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS kv (
  key BLOB PRIMARY KEY NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  revision INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, revision) VALUES (0, 1);
)sql";

// A failure of SQLite as a Status: what a retry or another moment may cure (busy, I/O,
// full disk, a read-only file) is kUnavailable; anything else (corruption) kInternal.
Status sqlite_error(sqlite3* db, int rc, std::string_view what) {
  const std::string msg =
      fmt::format("state store: {}: {}", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
      return Status::unavailable(msg);
    default:
      return Status::internal(msg);
  }
}

// A prepared statement kept for the store's lifetime.
class Statement {
 public:
  Statement() = default;
  ~Statement() { sqlite3_finalize(s_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  int prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr);
  }
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// One use of a kept statement: binds, steps, reads; resets it on scope exit so that the
// next use starts clean and no read lock is held in between.
class Use {
 public:
  explicit Use(const Statement& s) : s_(s.get()) {}
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  // Always a BLOB, also when empty (a null pointer would bind NULL).
  Use& bind(int i, std::string_view v) {
    sqlite3_bind_blob(s_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Use& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  std::string blob(int col) const {
    const void* p = sqlite3_column_blob(s_, col);
    const int n = sqlite3_column_bytes(s_, col);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
  }

 private:
  sqlite3_stmt* s_;
};

// The store's database is the control plane's alone: mode 0600 (SQLite gives its -wal and
// -shm files the database's mode when it creates them).
Status create_private_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return Status::unavailable(
        fmt::format("cannot open the state store '{}': {}", path, std::strerror(errno)));
  const int rc = ::fchmod(fd, 0600);
  const int err = errno;
  ::close(fd);
  if (rc != 0)
    return Status::unavailable(
        fmt::format("cannot make '{}' private (mode 0600): {}", path, std::strerror(err)));
  return {};
}

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteStore() override {
    // The statements go before the connection they belong to.
    statements_.reset();
    sqlite3_close(db_);
  }

  Status init() {
    sqlite3_busy_timeout(db_, 5000);
    // WAL: readers never wait for the writer; FULL: a commit is fsynced before it returns.
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
      if (Status s = exec(pragma); !s.ok()) return s;
    }
    {
      Statement v;
      int rc = v.prepare(db_, "PRAGMA user_version");
      if (rc != SQLITE_OK) return sqlite_error(db_, rc, "reading the schema version");
      Use u(v);
      if ((rc = u.step()) != SQLITE_ROW) return sqlite_error(db_, rc, "reading the schema version");
      if (u.i64(0) > kSchemaVersion)
        return Status::internal(fmt::format(
            "the state store '{}' has schema version {}, newer than this nimbus-cloud ({})", path_,
            u.i64(0), kSchemaVersion));
    }
    if (Status s = exec(kSchema); !s.ok()) return s;
    if (Status s = exec(fmt::format("PRAGMA user_version={}", kSchemaVersion)); !s.ok()) return s;

    statements_ = std::make_unique<Statements>();
    Statements& st = *statements_;
    const std::pair<Statement*, const char*> all[] = {
        {&st.begin, "BEGIN IMMEDIATE"},
        {&st.commit, "COMMIT"},
        {&st.rollback, "ROLLBACK"},
        {&st.get, "SELECT value, mod_revision, create_revision FROM kv WHERE key = ?1"},
        {&st.get_mod, "SELECT mod_revision FROM kv WHERE key = ?1"},
        {&st.range,
         "SELECT key, value, mod_revision, create_revision FROM kv "
         "WHERE key >= ?1 AND key < ?2 ORDER BY key"},
        {&st.range_open,
         "SELECT key, value, mod_revision, create_revision FROM kv WHERE key >= ?1 ORDER BY key"},
        {&st.put,
         "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?3) "
         "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
         "mod_revision = excluded.mod_revision"},
        {&st.del, "DELETE FROM kv WHERE key = ?1"},
        {&st.get_revision, "SELECT revision FROM meta WHERE id = 0"},
        {&st.set_revision, "UPDATE meta SET revision = ?1 WHERE id = 0"},
    };
    for (const auto& [statement, sql] : all) {
      if (int rc = statement->prepare(db_, sql); rc != SQLITE_OK)
        return sqlite_error(db_, rc, fmt::format("preparing '{}'", sql));
    }
    return {};
  }

  Result<std::optional<KeyValue>> get(const std::string& key) override {
    std::lock_guard lock(mu_);
    Use u(statements_->get);
    u.bind(1, key);
    const int rc = u.step();
    if (rc == SQLITE_DONE) return std::optional<KeyValue>();
    if (rc != SQLITE_ROW) return sqlite_error(db_, rc, fmt::format("reading key '{}'", key));
    return std::optional<KeyValue>(KeyValue{key, u.blob(0), u.i64(1), u.i64(2)});
  }

  Result<std::vector<KeyValue>> list(const std::string& prefix) override {
    const std::string end = prefix_end(prefix);
    std::lock_guard lock(mu_);
    // A range scan on the primary key; one statement, so one consistent snapshot.
    Use u(end.empty() ? statements_->range_open : statements_->range);
    u.bind(1, prefix);
    if (!end.empty()) u.bind(2, end);
    std::vector<KeyValue> out;
    int rc;
    while ((rc = u.step()) == SQLITE_ROW) out.push_back({u.blob(0), u.blob(1), u.i64(2), u.i64(3)});
    if (rc != SQLITE_DONE) return sqlite_error(db_, rc, fmt::format("listing prefix '{}'", prefix));
    return out;
  }

  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) override {
    if (Status s = validate_txn(compares, ops); !s.ok()) return s;
    for (const Op& op : ops) {
      if (op.lease != 0)
        return Status::unimplemented(fmt::format(
            "the store {} has no leases: key '{}' cannot be attached to one", describe(), op.key));
    }
    std::lock_guard lock(mu_);
    // IMMEDIATE: take the write lock now, so the compares and the writes see one state.
    if (int rc = Use(statements_->begin).step(); rc != SQLITE_DONE)
      return sqlite_error(db_, rc, "starting a txn");
    Result<TxnResult> r = txn_body(compares, ops);
    if (r.ok()) {
      if (int rc = Use(statements_->commit).step(); rc != SQLITE_DONE) {
        Status s = sqlite_error(db_, rc, "committing a txn");
        rollback();
        return s;
      }
      return r;
    }
    rollback();
    return r;
  }

  std::string describe() const override { return "sqlite:" + path_; }

 private:
  struct Statements {
    Statement begin, commit, rollback, get, get_mod, range, range_open, put, del, get_revision,
        set_revision;
  };

  // Inside BEGIN IMMEDIATE; an error (or a failed compare, which writes nothing) is
  // followed by a commit or rollback of the caller's.
  Result<TxnResult> txn_body(const std::vector<Compare>& compares, const std::vector<Op>& ops) {
    int64_t revision;
    {
      Use u(statements_->get_revision);
      const int rc = u.step();
      if (rc != SQLITE_ROW) return sqlite_error(db_, rc, "reading the revision");
      revision = u.i64(0);
    }
    for (const Compare& c : compares) {
      Use u(statements_->get_mod);
      u.bind(1, c.key);
      const int rc = u.step();
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sqlite_error(db_, rc, fmt::format("reading key '{}'", c.key));
      const int64_t mod = rc == SQLITE_ROW ? u.i64(0) : 0;
      if (mod != c.mod_revision) return TxnResult{false, revision};
    }
    const int64_t next = revision + 1;
    bool changed = false;
    for (const Op& op : ops) {
      const bool put = op.kind == Op::Kind::kPut;
      Use u(put ? statements_->put : statements_->del);
      u.bind(1, op.key);
      if (put) u.bind(2, op.value).bind(3, next);
      if (int rc = u.step(); rc != SQLITE_DONE)
        return sqlite_error(db_, rc, fmt::format("writing key '{}'", op.key));
      // etcd's revision moves on every put, and on a delete only if a key went.
      changed = changed || put || sqlite3_changes(db_) > 0;
    }
    if (!changed) return TxnResult{true, revision};
    Use u(statements_->set_revision);
    u.bind(1, next);
    if (int rc = u.step(); rc != SQLITE_DONE) return sqlite_error(db_, rc, "writing the revision");
    return TxnResult{true, next};
  }

  void rollback() {
    if (!sqlite3_get_autocommit(db_)) (void)Use(statements_->rollback).step();
  }

  Status exec(const std::string& sql) {
    char* err = nullptr;
    if (int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err); rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      Status s = sqlite_error(nullptr, rc, "");
      return Status(s.code(), fmt::format("state store '{}': {}", path_, msg));
    }
    return {};
  }

  std::mutex mu_;
  sqlite3* db_;
  const std::string path_;
  std::unique_ptr<Statements> statements_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  if (path.empty()) return Status::invalid_argument("the state store needs a path");
  if (path != ":memory:") {
    if (Status s = create_private_file(path); !s.ok()) return s;
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = sqlite_error(db, rc, fmt::format("opening '{}'", path));
    sqlite3_close(db);
    return s;
  }
  auto store = std::make_unique<SqliteStore>(db, path);
  if (Status s = store->init(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace nimbus::cloud
