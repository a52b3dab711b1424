#include "cloud/etcd_store.h"

#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cloud/base64.h"
#include "common/http_client.h"
#include "common/log.h"

namespace nimbus::cloud {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// gRPC status codes as the gateway's error bodies give them.
constexpr int kGrpcInvalidArgument = 3;
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcNotFound = 5;
constexpr int kGrpcResourceExhausted = 8;
constexpr int kGrpcUnavailable = 14;

// The gateway forwards Grpc-Metadata-* headers as gRPC metadata; "hasleader: true" makes a
// member without a leader refuse at once (etcd's clientv3.WithRequireLeader).
constexpr const char* kRequireLeaderHeader = "Grpc-Metadata-Hasleader";

// int64 fields come as JSON strings ("revision":"3"); default values are left out.
int64_t int_field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

std::string bytes_field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return {};
  auto d = base64_decode(it->get<std::string>());
  return d ? *d : std::string();
}

KeyValue kv_of(const json& j) {
  return KeyValue{bytes_field(j, "key"), bytes_field(j, "value"), int_field(j, "mod_revision"),
                  int_field(j, "create_revision")};
}

// A prefix as etcd's [key, range_end): "" is every key ("\0" to "\0").
void set_range(json& body, const std::string& prefix) {
  const std::string zero(1, '\0');
  if (prefix.empty()) {
    body["key"] = base64_encode(zero);
    body["range_end"] = base64_encode(zero);
    return;
  }
  body["key"] = base64_encode(prefix);
  const std::string end = prefix_end(prefix);
  body["range_end"] = base64_encode(end.empty() ? zero : end);
}

// An error reply of the gateway: {"error": MESSAGE, "code": GRPC_CODE, "message": ...}, or in
// a stream {"error": {"grpc_code": N, "message": ...}}.
struct EtcdError {
  int code = 0;
  std::string message;
};

std::optional<EtcdError> etcd_error(const json& j) {
  auto it = j.find("error");
  if (it == j.end()) return std::nullopt;
  EtcdError e;
  if (it->is_object()) {
    e.code = static_cast<int>(int_field(*it, "grpc_code"));
    e.message = it->value("message", "");
  } else {
    e.code = static_cast<int>(int_field(j, "code"));
    e.message = j.value("message", it->is_string() ? it->get<std::string>() : "");
  }
  if (e.message.empty()) e.message = fmt::format("gRPC code {}", e.code);
  return e;
}

// Refused before it was proposed to raft (so nothing happened and another member may do
// it): no leader, a stopped member, too many requests.
bool refused_unapplied(const EtcdError& e) {
  if (e.code == kGrpcResourceExhausted) return true;
  if (e.code != kGrpcUnavailable) return false;
  return e.message.find("no leader") != std::string::npos ||
         e.message.find("server stopped") != std::string::npos ||
         e.message.find("not capable") != std::string::npos;
}

bool transient(const EtcdError& e) {
  return e.code == kGrpcUnavailable || e.code == kGrpcDeadlineExceeded ||
         e.code == kGrpcResourceExhausted;
}

class EtcdStore;

// One watch: a thread that keeps a /v3/watch stream open on some member, resuming from the
// revision after the last one delivered when a stream breaks.
class EtcdWatch final : public Watch {
 public:
  EtcdWatch(std::vector<std::string> endpoints, std::string prefix, int64_t start,
            WatchCallback callback, int connect_timeout_ms)
      : endpoints_(std::move(endpoints)),
        prefix_(std::move(prefix)),
        next_(start),
        callback_(std::move(callback)),
        connect_timeout_ms_(connect_timeout_ms) {
    thread_ = std::thread([this] { run(); });
  }
  ~EtcdWatch() override {
    // httplib's stop() only shuts a socket that is open: a stream still connecting when it
    // is called would start afterwards, so it is called until the thread is done.
    std::unique_lock lock(mu_);
    stop_ = true;
    cv_.notify_all();
    while (!done_) {
      if (client_) client_->stop();
      cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return done_; });
    }
    lock.unlock();
    thread_.join();
  }

 private:
  void run() {
    loop();
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  void loop() {
    size_t member = 0;
    int failures = 0;
    while (!stopping()) {
      std::string why;
      const bool ended = stream(endpoints_[member % endpoints_.size()], why);
      if (ended || stopping()) return;
      spdlog::debug("etcd watch on '{}' via {}: {}; resuming at revision {}", prefix_,
                    endpoints_[member % endpoints_.size()], why, next_);
      ++member;
      // Round the members at once, then back off (up to 1 s) while none serves.
      if (++failures % endpoints_.size() == 0) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(std::min(1000, 100 * failures)),
                     [&] { return stop_; });
      }
    }
  }

  bool stopping() {
    std::lock_guard lock(mu_);
    return stop_;
  }

  // One stream; true when the watch is over (cancelled, or ended with an error delivered).
  bool stream(const std::string& endpoint, std::string& why) {
    auto client = std::make_shared<httplib::Client>(endpoint);
    client->set_connection_timeout(0, connect_timeout_ms_ * 1000);
    client->set_read_timeout(3600, 0);  // an idle watch is quiet; cancel stops it
    client->set_keep_alive(false);
    {
      std::lock_guard lock(mu_);
      if (stop_) return true;
      client_ = client;
    }
    json create = {{"progress_notify", false}};
    set_range(create, prefix_);
    if (next_ > 0) create["start_revision"] = std::to_string(next_);
    const std::string body = json{{"create_request", create}}.dump();
    std::string buffer;
    bool over = false;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v3/watch";
    req.headers = {{kRequireLeaderHeader, "true"}, {"Content-Type", "application/json"}};
    req.body = body;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      buffer.append(data, n);
      if (buffer.size() > 256 * 1024 * 1024) {
        why = "a message over 256 MiB";
        return false;
      }
      size_t nl;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        const std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        if (!handle_line(line, why, over)) return false;
      }
      return !over;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const bool sent = client->send(req, res, error);
    {
      std::lock_guard lock(mu_);
      client_.reset();
    }
    if (over) return true;
    if (why.empty())
      why =
          sent ? fmt::format("the stream ended (HTTP {})", res.status) : httplib::to_string(error);
    return false;
  }

  // false: drop this stream (why says it); over: the watch is done.
  bool handle_line(const std::string& line, std::string& why, bool& over) {
    if (line.find_first_not_of(" \r\t") == std::string::npos) return true;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      why = "a line that is not JSON";
      return false;
    }
    if (auto e = etcd_error(j)) {
      why = e->message;
      return false;
    }
    const json& r = j.contains("result") ? j["result"] : j;
    if (!r.is_object()) {
      why = "a result that is not an object";
      return false;
    }
    if (r.value("canceled", false)) {
      const int64_t compacted = int_field(r, "compact_revision");
      if (compacted > 0) {
        deliver(Status::not_found(
            fmt::format("etcd watch on '{}': revision {} was compacted (the oldest kept is {})",
                        prefix_, next_, compacted)));
        over = true;
        return false;
      }
      why = "cancelled by etcd: " + r.value("cancel_reason", std::string("no reason given"));
      return false;
    }
    const int64_t header_revision = r.contains("header") ? int_field(r["header"], "revision") : 0;
    if (r.value("created", false)) {
      // From now on: the stream starts after the revision it was created at.
      if (next_ <= 0 && header_revision > 0) next_ = header_revision + 1;
    }
    auto events = r.find("events");
    if (events == r.end() || !events->is_array() || events->empty()) return true;
    std::vector<WatchEvent> out;
    int64_t last = next_ - 1;
    for (const json& e : *events) {
      WatchEvent ev;
      ev.type = e.value("type", std::string("PUT")) == "DELETE" ? WatchEvent::Type::kDelete
                                                                : WatchEvent::Type::kPut;
      if (e.contains("kv")) ev.kv = kv_of(e["kv"]);
      if (ev.kv.mod_revision < next_) continue;  // seen already (a resumed stream)
      last = std::max(last, ev.kv.mod_revision);
      out.push_back(std::move(ev));
    }
    if (out.empty()) return true;
    next_ = last + 1;
    deliver(std::move(out));
    return true;
  }

  void deliver(Result<std::vector<WatchEvent>> r) {
    if (stopping()) return;
    callback_(std::move(r));
  }

  const std::vector<std::string> endpoints_;
  const std::string prefix_;
  int64_t next_;  // the first revision not delivered yet (0: from now, not known yet)
  WatchCallback callback_;
  const int connect_timeout_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, done_ = false;
  std::shared_ptr<httplib::Client> client_;
  std::thread thread_;
};

class EtcdStore final : public Store {
 public:
  explicit EtcdStore(EtcdOptions options) : options_(std::move(options)) {
    for (const std::string& e : options_.endpoints) {
      http::ClientOptions co;
      co.connect_timeout_ms = options_.connect_timeout_ms;
      co.read_timeout_ms = options_.request_timeout_ms;
      co.max_reply_body = 512u * 1024 * 1024;
      co.peer = "etcd";
      co.headers = {{kRequireLeaderHeader, "true"}};
      auto target = http::parse_target(e);
      clients_.emplace_back(*target, co);
    }
  }

  Result<std::optional<KeyValue>> get(const std::string& key) override {
    if (key.empty()) return Status::invalid_argument("a store key is not empty");
    json body = {{"key", base64_encode(key)}};
    auto r = call("/v3/kv/range", body, true);
    if (!r.ok()) return r.status();
    auto kvs = r->find("kvs");
    if (kvs == r->end() || !kvs->is_array() || kvs->empty()) return std::optional<KeyValue>();
    return std::optional<KeyValue>(kv_of(kvs->front()));
  }

  Result<std::vector<KeyValue>> list(const std::string& prefix) override {
    json body = json::object();
    set_range(body, prefix);
    auto r = call("/v3/kv/range", body, true);
    if (!r.ok()) return r.status();
    std::vector<KeyValue> out;
    auto kvs = r->find("kvs");
    if (kvs == r->end() || !kvs->is_array()) return out;
    out.reserve(kvs->size());
    for (const json& kv : *kvs) out.push_back(kv_of(kv));  // etcd sorts by key, bytewise
    return out;
  }

  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& ops) override {
    if (Status s = validate_txn(compares, ops); !s.ok()) return s;
    json cmp = json::array(), success = json::array();
    for (const Compare& c : compares) {
      cmp.push_back({{"target", "MOD"},
                     {"result", "EQUAL"},
                     {"key", base64_encode(c.key)},
                     {"mod_revision", std::to_string(c.mod_revision)}});
    }
    for (const Op& op : ops) {
      if (op.kind == Op::Kind::kPut) {
        json put = {{"key", base64_encode(op.key)}, {"value", base64_encode(op.value)}};
        if (op.lease != 0) put["lease"] = std::to_string(op.lease);
        success.push_back({{"request_put", put}});
      } else {
        success.push_back({{"request_delete_range", {{"key", base64_encode(op.key)}}}});
      }
    }
    json body = {{"compare", cmp}, {"success", success}};
    auto r = call("/v3/kv/txn", body, false);
    if (!r.ok()) return r.status();
    TxnResult out;
    out.succeeded = r->value("succeeded", false);
    out.revision = r->contains("header") ? int_field((*r)["header"], "revision") : 0;
    return out;
  }

  std::string describe() const override {
    std::string d = "etcd://";
    for (size_t i = 0; i < options_.endpoints.size(); ++i) {
      std::string_view e = options_.endpoints[i];
      if (e.rfind("http://", 0) == 0) e.remove_prefix(7);
      if (i) d += ',';
      d += e;
    }
    return d;
  }

  Result<int64_t> lease_grant(int64_t ttl_seconds) override {
    if (ttl_seconds < 1 || ttl_seconds > 1000000000)
      return Status::invalid_argument(
          fmt::format("a lease's TTL is 1 to 1e9 seconds, not {}", ttl_seconds));
    // Not idempotent (a lost reply leaves a lease nobody keeps alive: it expires alone).
    auto r = call("/v3/lease/grant", {{"TTL", std::to_string(ttl_seconds)}}, false);
    if (!r.ok()) return r.status();
    const int64_t id = int_field(*r, "ID");
    if (id == 0)
      return Status::internal("etcd granted no lease: " + r->value("error", std::string("?")));
    return id;
  }

  Result<int64_t> lease_keep_alive(int64_t lease) override {
    if (lease <= 0) return Status::invalid_argument(fmt::format("no lease {}", lease));
    auto r = call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}, true, true);
    if (!r.ok()) return r.status();
    const json& res = r->contains("result") ? (*r)["result"] : *r;
    const int64_t ttl = res.is_object() ? int_field(res, "TTL") : 0;
    if (ttl <= 0)
      return Status::not_found(fmt::format("etcd lease {:x} expired or was revoked", lease));
    return ttl;
  }

  Status lease_revoke(int64_t lease) override {
    if (lease <= 0) return Status::invalid_argument(fmt::format("no lease {}", lease));
    auto r = call("/v3/lease/revoke", {{"ID", std::to_string(lease)}}, true);
    return r.ok() ? Status() : r.status();
  }

  Result<std::unique_ptr<Watch>> watch(const std::string& prefix, int64_t start_revision,
                                       WatchCallback callback) override {
    if (start_revision < 0)
      return Status::invalid_argument(fmt::format("a watch from revision {}", start_revision));
    if (!callback) return Status::invalid_argument("a watch needs a callback");
    // Start with the member that answered last.
    std::vector<std::string> order;
    const size_t n = options_.endpoints.size(), first = preferred_.load();
    for (size_t i = 0; i < n; ++i) order.push_back(options_.endpoints[(first + i) % n]);
    return std::unique_ptr<Watch>(std::make_unique<EtcdWatch>(std::move(order), prefix,
                                                              start_revision, std::move(callback),
                                                              options_.connect_timeout_ms));
  }

 private:
  // POSTs `body` to `path` on the members in turn (see the header for when it moves on).
  // stream: a streaming endpoint (lease keep-alive), whose first message is the answer.
  Result<json> call(const std::string& path, const json& body, bool idempotent,
                    bool stream = false) {
    const std::string text = body.dump();
    const size_t n = clients_.size();
    const Clock::time_point give_up = Clock::now() + std::chrono::milliseconds(options_.retry_ms);
    std::vector<std::string> last_error(n);
    for (int round = 0;; ++round) {
      size_t unreachable = 0;
      const size_t first = preferred_.load();
      for (size_t i = 0; i < n; ++i) {
        const size_t m = (first + i) % n;
        auto reply = stream ? first_line(m, path, text) : clients_[m].request("POST", path, text);
        if (!reply.ok()) {
          // "cannot reach": the connection was never made, nothing was sent.
          const bool unsent = reply.message().find("cannot reach") != std::string::npos;
          if (unsent) ++unreachable;
          last_error[m] = reply.message();
          if (!unsent && !idempotent) return unknown_outcome(path, m, reply.message());
          continue;
        }
        json j = json::parse(reply->body, nullptr, false);
        if (j.is_discarded() || !j.is_object())
          return Status::internal(fmt::format("etcd at {} answered {} with HTTP {} and no JSON",
                                              options_.endpoints[m], path, reply->status));
        if (auto e = etcd_error(j)) {
          if (!transient(*e)) {
            const std::string msg = fmt::format("etcd: {}", e->message);
            if (e->code == kGrpcInvalidArgument) return Status::invalid_argument(msg);
            if (e->code == kGrpcNotFound) return Status::not_found(msg);
            return Status::internal(fmt::format("{} (gRPC code {})", msg, e->code));
          }
          last_error[m] = e->message;
          if (!idempotent && !refused_unapplied(*e)) return unknown_outcome(path, m, e->message);
          continue;
        }
        if (reply->status / 100 != 2) {
          last_error[m] = fmt::format("HTTP {}", reply->status);
          if (!idempotent) return unknown_outcome(path, m, last_error[m]);
          continue;
        }
        preferred_.store(m);
        return j;
      }
      if (Clock::now() >= give_up) {
        std::string each;
        for (size_t m = 0; m < n; ++m)
          each += fmt::format("{}{}: {}", m ? "; " : "", options_.endpoints[m], last_error[m]);
        return Status::unavailable(fmt::format(
            "etcd: no quorum ({} of {} members unreachable, the rest without a leader?) after {} "
            "ms: {}",
            unreachable, n, options_.retry_ms, each));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * (round + 1), 500)));
    }
  }

  // POSTs to a streaming endpoint of member m and returns its first line as the reply's
  // body. The gateway sometimes drops the connection after a stream's last message without
  // ending the chunked body, which the one-shot client would report as a broken reply.
  Result<http::Reply> first_line(size_t m, const std::string& path, const std::string& text) {
    httplib::Client client(options_.endpoints[m]);
    client.set_connection_timeout(0, options_.connect_timeout_ms * 1000);
    client.set_read_timeout(options_.request_timeout_ms / 1000, 0);
    client.set_write_timeout(options_.request_timeout_ms / 1000, 0);
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.headers = {{kRequireLeaderHeader, "true"}, {"Content-Type", "application/json"}};
    req.body = text;
    std::string buffer;
    bool have_line = false;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      buffer.append(data, n);
      const size_t nl = buffer.find('\n');
      if (nl != std::string::npos) {
        buffer.resize(nl);
        have_line = true;
        return false;  // all we need
      }
      return buffer.size() < 16 * 1024 * 1024;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    const bool sent = client.send(req, res, error);
    if (!have_line && !sent && error == httplib::Error::Connection)
      return Status::unavailable(fmt::format("cannot reach etcd at {}: {}", options_.endpoints[m],
                                             httplib::to_string(error)));
    if (!have_line && buffer.empty() && !sent)
      return Status::unavailable(fmt::format("etcd at {}: {} during {}", options_.endpoints[m],
                                             httplib::to_string(error), path));
    http::Reply reply;
    reply.status = sent ? res.status : 200;
    reply.body = std::move(buffer);
    return reply;
  }

  Status unknown_outcome(const std::string& path, size_t member, const std::string& what) {
    return Status::unavailable(fmt::format(
        "etcd at {}: {} during {}: the outcome is unknown (the write may have been applied); "
        "read again before retrying",
        options_.endpoints[member], what, path));
  }

  const EtcdOptions options_;
  std::vector<http::Client> clients_;
  std::atomic<size_t> preferred_{0};
};

}  // namespace

Result<std::vector<std::string>> parse_etcd_url(std::string_view url) {
  constexpr std::string_view scheme = "etcd://";
  if (url.substr(0, scheme.size()) != scheme)
    return Status::invalid_argument(
        fmt::format("'{}' is not etcd://HOST:PORT[,HOST:PORT...]", url));
  std::string_view rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::vector<std::string> out;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view member = rest.substr(0, comma);
    const size_t colon = member.rfind(':');
    if (member.empty() || colon == std::string_view::npos || colon + 1 == member.size() ||
        member.find('/') != std::string_view::npos)
      return Status::invalid_argument(
          fmt::format("etcd URL '{}': member '{}' is not HOST:PORT", url, std::string(member)));
    const std::string endpoint = "http://" + std::string(member);
    auto target = http::parse_target(endpoint);
    if (!target.ok() || target->unix_socket)
      return Status::invalid_argument(fmt::format("etcd URL '{}': member '{}': {}", url,
                                                  std::string(member), target.message()));
    out.push_back(endpoint);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (out.size() > 64) return Status::invalid_argument("an etcd URL names at most 64 members");
  return out;
}

Result<std::unique_ptr<Store>> open_etcd_store(EtcdOptions options) {
  if (options.endpoints.empty()) return Status::invalid_argument("an etcd store needs a member");
  for (const std::string& e : options.endpoints) {
    auto t = http::parse_target(e);
    if (!t.ok() || t->unix_socket)
      return Status::invalid_argument(fmt::format("etcd member '{}': {}", e, t.message()));
  }
  return std::unique_ptr<Store>(std::make_unique<EtcdStore>(std::move(options)));
}

}  // namespace nimbus::cloud
