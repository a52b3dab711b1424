// The control plane's state store: a flat, sorted key space of byte-string keys and values
// with etcd v3's revision model, so that the SQLite store (one control plane host) and an
// etcd store (several) are interchangeable (docs: design/CLOUD-NOTES.md §5).
//
//   - One global revision: each successful txn that changes something increments it, and
//     every key it writes gets that revision as its mod_revision. create_revision is the
//     revision that created the key and is kept across updates (a delete forgets it).
//   - The only write is txn(): a list of compares on mod revisions, and the ops applied
//     atomically iff all of them hold (etcd's Txn with If(ModRevision(k) = r)).
//   - A fresh store is at revision 1, as a fresh etcd cluster; its first write is revision 2.
//
// Limits are etcd's defaults (--max-txn-ops, --max-request-bytes) so that what works on
// SQLite works on etcd: a caller with more to write splits it into several txns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace nimbus::cloud {

struct KeyValue {
  std::string key, value;
  int64_t mod_revision = 0, create_revision = 0;
};

// Holds iff the key's mod revision equals mod_revision (0: the key does not exist).
struct Compare {
  std::string key;
  int64_t mod_revision = 0;
};

struct Op {
  enum class Kind { kPut, kDelete } kind = Kind::kPut;
  std::string key, value;  // value: kPut only
  int64_t lease = 0;       // kPut only: the key goes when this lease does (0: no lease)
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // the store's revision after the txn (on failure: when compared)
};

// etcd's default limits: ops per txn (--max-txn-ops), and bytes of keys and values in one
// txn: etcd's --max-request-bytes (1.5 MiB) counts the whole encoded request, so 64 KiB
// are left for its framing (128 ops and compares take about 5 KiB of it).
inline constexpr size_t kMaxTxnOps = 128;
inline constexpr size_t kMaxTxnBytes = 1536 * 1024 - 64 * 1024;

// One change seen by a watch: a put (kv as written) or a delete (kv.key, and kv.mod_revision
// the delete's revision; value empty, create_revision 0).
struct WatchEvent {
  enum class Type { kPut, kDelete } type = Type::kPut;
  KeyValue kv;
};

// Called on the watch's own thread with each batch of events, in revision order, never
// two calls at once. An error ends the watch (the callback is called once with it, then
// never again): kNotFound when the start revision was compacted away. A store that cannot
// be reached for a while is retried by the watch itself, which resumes where it was.
// The callback must not destroy its own Watch.
using WatchCallback = std::function<void(Result<std::vector<WatchEvent>>)>;

class Watch {
 public:
  virtual ~Watch() = default;  // cancels: once it returns, the callback is not running
};

class Store {
 public:
  virtual ~Store() = default;
  virtual Result<std::optional<KeyValue>> get(const std::string& key) = 0;
  // Every key starting with `prefix` ("" is every key), sorted by key (bytewise).
  virtual Result<std::vector<KeyValue>> list(const std::string& prefix) = 0;
  // All ops applied atomically iff every compare holds (else nothing changes,
  // succeeded=false). kInvalidArgument for an empty key, a key written twice, or a txn over
  // the limits above; kUnavailable when the store cannot be reached or written.
  virtual Result<TxnResult> txn(const std::vector<Compare>& compares,
                                const std::vector<Op>& ops) = 0;
  virtual std::string describe() const = 0;  // e.g. "sqlite:/path/cloud.db"

  // Leases: grant returns the new lease's id (ttl_seconds 1..1e9; etcd may raise a TTL to
  // its minimum, 2 s by default); keep_alive renews it and returns its TTL (kNotFound when
  // it expired or was revoked); revoke deletes it and the keys attached to it (kNotFound:
  // no such lease). The defaults answer kUnimplemented (the SQLite store).
  virtual Result<int64_t> lease_grant(int64_t ttl_seconds);
  virtual Result<int64_t> lease_keep_alive(int64_t lease);
  virtual Status lease_revoke(int64_t lease);
  // Every change to keys under `prefix` ("" every key) at revisions >= start_revision (0:
  // from whenever the watch's stream is set up, a moment after this returns: to miss
  // nothing, pass the revision after the one last read). The default answers kUnimplemented (the
  // SQLite store: poll with list()).
  virtual Result<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t start_revision,
                                               WatchCallback callback);
};

// The first key after every key that starts with `prefix`, as etcd's range_end: the prefix
// with its last byte incremented, trailing 0xff bytes dropped first. "" when there is no
// such key (prefix "" or all 0xff): the range is then unbounded above.
std::string prefix_end(std::string_view prefix);

// Checks the txn against the rules above (for store implementations); a negative lease, or
// a lease on a delete, is kInvalidArgument too.
Status validate_txn(const std::vector<Compare>& compares, const std::vector<Op>& ops);

// Unconditional put; returns the key's new mod revision.
Result<int64_t> put(Store& store, const std::string& key, const std::string& value);
// Create-only put: kConflict if the key exists. Returns the new key's mod revision.
Result<int64_t> put_if_absent(Store& store, const std::string& key, const std::string& value);
// Compare-and-swap put: kConflict unless the key's mod revision is `mod_revision` (0: the
// key must not exist). Returns the key's new mod revision.
Result<int64_t> put_if_revision(Store& store, const std::string& key, const std::string& value,
                                int64_t mod_revision);

// Read-modify-write of one key, as Kubernetes' GuaranteedUpdate: reads the key, calls
// `change` with it (nullopt: absent), and commits its answer compared on the revision
// read: a value is put, nullopt deletes the key; an error from `change` aborts with that
// error. On a conflict (another writer got in between) it reads again and retries, up to
// max_attempts times, then kConflict. Returns the key as written (after a delete: key set,
// value empty, revisions 0). `change` may be called several times: it must not have side
// effects beyond its answer.
using UpdateFn = std::function<Result<std::optional<std::string>>(const std::optional<KeyValue>&)>;
Result<KeyValue> update(Store& store, const std::string& key, const UpdateFn& change,
                        int max_attempts = 50);

}  // namespace nimbus::cloud
