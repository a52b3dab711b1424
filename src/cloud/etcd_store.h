// The state store on an etcd v3 cluster (several control plane hosts share it), through
// etcd's JSON gateway (POST /v3/kv/range, /v3/kv/txn, /v3/lease/*, /v3/watch on each
// member's client URL): the same calls as gRPC with the same semantics, but over the
// project's HTTP/1.1 client and nlohmann-json, so the build needs no protobuf/gRPC codegen.
//
// Members: a list of client URLs. A call goes to the member that answered last; when a
// member cannot be reached or has no leader (every request asks for one: etcd's
// "hasleader" metadata, so a member cut off from the quorum answers at once rather than
// after its 7 s request timeout) the next is tried, over and over for up to
// EtcdOptions::retry_ms; then kUnavailable ("etcd: no quorum ...") naming what each said.
//
// A txn whose reply was lost (connection closed or timed out after the request went out,
// or etcd's own "request timed out" / "leader changed") may have been applied or not: it
// is NOT sent again (a retry of a put without compares could apply twice, and a retry with
// compares would fail on its own write and report a conflict that was a success). It is
// kUnavailable with "the outcome is unknown"; the caller reads again before deciding, as
// it does after any failure (update() reads at the start of each attempt). Reads, lease
// keep-alives and revokes are retried on the next member, as they are idempotent.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/store.h"

namespace nimbus::cloud {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // http://HOST:PORT of each member
  int connect_timeout_ms = 1000;
  // One request's whole exchange; above etcd's own request timeout (5 s + 2 elections).
  int request_timeout_ms = 10000;
  // How long a call keeps going round the members while none can serve it (an election
  // after a member died takes a second or two).
  int retry_ms = 3000;
};

// "etcd://HOST:PORT[,HOST:PORT...]" → the members' URLs (http://HOST:PORT). HOST is a
// name, an IPv4 address or [IPv6]. kInvalidArgument for anything else.
Result<std::vector<std::string>> parse_etcd_url(std::string_view url);

// A store on the cluster; contacts no member yet (the first call does).
Result<std::unique_ptr<Store>> open_etcd_store(EtcdOptions options);

}  // namespace nimbus::cloud
