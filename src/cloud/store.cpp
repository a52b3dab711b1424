#include "cloud/store.h"

#include <fmt/format.h>

#include <set>

namespace nimbus::cloud {

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;
}

Status validate_txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) {
  if (ops.size() > kMaxTxnOps || compares.size() > kMaxTxnOps)
    return Status::invalid_argument(
        fmt::format("a store txn has at most {} ops and {} compares (got {} and {})", kMaxTxnOps,
                    kMaxTxnOps, ops.size(), compares.size()));
  size_t bytes = 0;
  for (const Compare& c : compares) {
    if (c.key.empty()) return Status::invalid_argument("a store txn compares an empty key");
    if (c.mod_revision < 0)
      return Status::invalid_argument(
          fmt::format("a store txn compares key '{}' on a negative revision", c.key));
    bytes += c.key.size();
  }
  std::set<std::string_view> written;
  for (const Op& op : ops) {
    if (op.key.empty()) return Status::invalid_argument("a store txn writes an empty key");
    if (op.lease < 0 || (op.lease != 0 && op.kind != Op::Kind::kPut))
      return Status::invalid_argument(
          fmt::format("a store txn attaches key '{}' to a bad lease ({})", op.key, op.lease));
    if (!written.insert(op.key).second)
      return Status::invalid_argument(
          fmt::format("a store txn writes key '{}' twice", op.key));  // etcd refuses it too
    bytes += op.key.size() + op.value.size();
  }
  if (bytes > kMaxTxnBytes)
    return Status::invalid_argument(fmt::format(
        "a store txn holds {} bytes of keys and values, more than {}", bytes, kMaxTxnBytes));
  return {};
}

Result<int64_t> Store::lease_grant(int64_t) {
  return Status::unimplemented(fmt::format("the store {} has no leases (etcd's have)", describe()));
}
Result<int64_t> Store::lease_keep_alive(int64_t) {
  return Status::unimplemented(fmt::format("the store {} has no leases (etcd's have)", describe()));
}
Status Store::lease_revoke(int64_t) {
  return Status::unimplemented(fmt::format("the store {} has no leases (etcd's have)", describe()));
}
Result<std::unique_ptr<Watch>> Store::watch(const std::string&, int64_t, WatchCallback) {
  return Status::unimplemented(
      fmt::format("the store {} has no watches (etcd's have): poll with list()", describe()));
}

namespace {

Result<int64_t> put_compared(Store& store, const std::string& key, const std::string& value,
                             std::vector<Compare> compares) {
  Result<TxnResult> r = store.txn(compares, {Op{Op::Kind::kPut, key, value}});
  if (!r.ok()) return r.status();
  if (!r->succeeded) {
    if (compares.front().mod_revision == 0)
      return Status::conflict(fmt::format("key '{}' exists already", key));
    return Status::conflict(
        fmt::format("key '{}' changed since revision {}", key, compares.front().mod_revision));
  }
  return r->revision;
}

}  // namespace

Result<int64_t> put(Store& store, const std::string& key, const std::string& value) {
  Result<TxnResult> r = store.txn({}, {Op{Op::Kind::kPut, key, value}});
  if (!r.ok()) return r.status();
  return r->revision;
}

Result<int64_t> put_if_absent(Store& store, const std::string& key, const std::string& value) {
  return put_compared(store, key, value, {Compare{key, 0}});
}

Result<int64_t> put_if_revision(Store& store, const std::string& key, const std::string& value,
                                int64_t mod_revision) {
  return put_compared(store, key, value, {Compare{key, mod_revision}});
}

Result<KeyValue> update(Store& store, const std::string& key, const UpdateFn& change,
                        int max_attempts) {
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    Result<std::optional<KeyValue>> current = store.get(key);
    if (!current.ok()) return current.status();
    Result<std::optional<std::string>> next = change(*current);
    if (!next.ok()) return next.status();
    const int64_t seen = current->has_value() ? (*current)->mod_revision : 0;
    Op op = next->has_value() ? Op{Op::Kind::kPut, key, **next} : Op{Op::Kind::kDelete, key, ""};
    Result<TxnResult> r = store.txn({Compare{key, seen}}, {op});
    if (!r.ok()) return r.status();
    if (!r->succeeded) continue;  // someone else wrote it: read again
    if (!next->has_value()) return KeyValue{key, "", 0, 0};
    const int64_t created = current->has_value() ? (*current)->create_revision : r->revision;
    return KeyValue{key, std::move(**next), r->revision, created};
  }
  return Status::conflict(
      fmt::format("key '{}' kept changing: gave up after {} attempts", key, max_attempts));
}

}  // namespace nimbus::cloud
