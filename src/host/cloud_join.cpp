#include "host/cloud_join.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <mutex>

#include "common/http_client.h"
#include "host/host_checks.h"
#include "host/host_json.h"

namespace nimbus::host {
using nlohmann::json;

Result<json> host_report(HostOps& ops) {
  auto host = ops.host_info();
  if (!host.ok()) return host.status().with_context("the host");
  auto vms = ops.list_vms();
  if (!vms.ok()) return vms.status().with_context("the VMs");
  auto images = ops.list_images();
  if (!images.ok()) return images.status().with_context("the images");
  json j = {{"host", to_json(*host)}, {"vms", json::array()}, {"images", json::array()}};
  for (const VmInfo& vm : *vms) j["vms"].push_back(to_json(vm));
  for (const ImageInfo& image : *images) j["images"].push_back(to_json(image));
  return j;
}

bool valid_host_id(const std::string& id) { return valid_name(id); }

bool valid_zone(const std::string& zone) {
  if (zone.empty() || zone.size() > 63 || !std::islower(static_cast<unsigned char>(zone.back())))
    return false;
  return std::all_of(zone.begin(), zone.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '-';
  });
}

std::vector<std::string> split_cloud_urls(const std::string& urls) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = urls.find(',', start);
    out.push_back(
        urls.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Status check_cloud_url(const std::string& urls) {
  for (const std::string& url : split_cloud_urls(urls)) {
    if (url.rfind("http://", 0) != 0)
      return Status::invalid_argument(fmt::format("'{}' is not http://HOST[:PORT]", url));
    auto target = http::parse_target(url);
    if (!target.ok()) return target.status();
  }
  return {};
}

struct CloudJoin::Shared {
  CloudJoinOptions options;
  HeartbeatReport report;
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false, in_report = false, done = false;
  State state;  // under mu
  bool ever_joined = false;

  // A heartbeat's outcome, logged on a change: the first success, a loss, a recovery, and
  // each new error once (a control plane down for hours logs one line, not thousands).
  void record(const Status& outcome, unsigned interval_s) {
    state.sent++;
    const std::string& url = state.url;
    if (outcome.ok()) {
      state.answered++;
      state.interval_s = interval_s;
      if (!ever_joined) {
        spdlog::info("joined cloud {} as {} in {} (heartbeat every {} s)", url, options.host_id,
                     options.zone, interval_s);
      } else if (!state.joined) {
        spdlog::info("cloud {}: regained (heartbeats answered again)", url);
      }
      ever_joined = state.joined = true;
      state.error.clear();
      return;
    }
    if (state.joined) {
      spdlog::warn("cloud {}: lost: {} (retrying every {} s)", url, outcome.message(),
                   state.interval_s);
    } else if (outcome.message() != state.error) {
      spdlog::warn("cloud {}: heartbeat failed: {} (retrying every {} s)", url, outcome.message(),
                   state.interval_s);
    }
    state.joined = false;
    state.error = outcome.message();
  }
};

CloudJoin::CloudJoin(CloudJoinOptions options, HeartbeatReport report)
    : shared_(std::make_shared<Shared>()) {
  shared_->options = std::move(options);
  shared_->report = std::move(report);
}

CloudJoin::~CloudJoin() { stop(); }

Status CloudJoin::start() {
  if (thread_.joinable()) return {};
  if (Status s = check_cloud_url(shared_->options.cloud_url); !s.ok()) return s;
  thread_ = std::thread(run, shared_);
  return {};
}

void CloudJoin::stop() {
  if (!thread_.joinable()) return;
  bool done = false;
  {
    std::unique_lock<std::mutex> lock(shared_->mu);
    shared_->stopping = true;
    shared_->cv.notify_all();
    // The report reads the caller's objects: it is local and quick, so wait for it whole.
    shared_->cv.wait(lock, [&] { return !shared_->in_report; });
    done = shared_->cv.wait_for(lock, shared_->options.stop_grace, [&] { return shared_->done; });
  }
  if (done) {
    thread_.join();
  } else {
    // Its HTTP call has a deadline and then it ends, touching only `shared`.
    spdlog::info("cloud {}: a heartbeat is still in flight; not waiting for it",
                 shared_->options.cloud_url);
    thread_.detach();
  }
}

CloudJoin::State CloudJoin::state() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->state;
}

namespace {

// One heartbeat: the interval the control plane asks for, or why it failed; *elsewhere is
// set when another replica may answer (no connection, a timeout, a 5xx).
Result<unsigned> send(const http::Client& client, const CloudJoinOptions& o, const json& report,
                      bool* elsewhere) {
  *elsewhere = false;
  json body = report;
  body["host_id"] = o.host_id;
  body["zone"] = o.zone;
  body["api_url"] = o.api_url;
  body["api_token"] = o.api_token;
  if (!o.tunnel_endpoint.empty()) body["tunnel_endpoint"] = o.tunnel_endpoint;
  auto reply = client.request("POST", kHeartbeatPath,
                              body.dump(-1, ' ', false, json::error_handler_t::replace));
  if (!reply.ok()) {
    *elsewhere = true;
    return reply.status();
  }
  if (reply->status != 200) {
    *elsewhere = reply->status >= 500;
    return Status(http::reply_error(*reply).code(),
                  fmt::format("HTTP {}: {}", reply->status, http::reply_error(*reply).message()));
  }
  const json j = json::parse(reply->body, nullptr, false);
  if (!j.is_object() || !j.contains("interval_s") || !j["interval_s"].is_number()) {
    return Status::internal("the reply is not {\"interval_s\": N}");
  }
  const double n = j["interval_s"].get<double>();
  if (!(n == n)) return Status::internal("interval_s is not a number");  // NaN
  // The host's peer set, replaced by each reply that carries one; a bad one is refused
  // whole (the peers stay as they were) and said, without failing the heartbeat.
  // Logged once per change (the heartbeat thread is this CloudJoin's alone).
  if (o.on_tunnel_peers && j.contains("tunnel_peers")) {
    thread_local std::string last_error;
    Status s = o.on_tunnel_peers(j["tunnel_peers"]);
    if (!s.ok() && s.message() != last_error)
      spdlog::warn("cloud {}: tunnel_peers refused: {}", o.cloud_url, s.message());
    last_error = s.ok() ? "" : s.message();
  }
  return static_cast<unsigned>(std::clamp(n, double(kMinHeartbeatS), double(kMaxHeartbeatS)));
}

}  // namespace

void CloudJoin::run(std::shared_ptr<Shared> s) {
  const CloudJoinOptions& o = s->options;
  http::ClientOptions co;
  co.token = o.join_token;
  co.connect_timeout_ms = o.connect_timeout_ms;
  co.read_timeout_ms = o.request_timeout_ms;
  co.max_reply_body = 64 * 1024;
  co.peer = "the cloud";
  std::vector<std::string> urls = split_cloud_urls(o.cloud_url);
  std::vector<http::Client> clients;
  for (const std::string& url : urls) {
    auto target = http::parse_target(url);  // checked by start()
    clients.emplace_back(target.ok() ? *target : http::Target{}, co);
  }
  size_t current = 0;  // the replica that answered last
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (s->stopping) break;
      s->in_report = true;
    }
    Result<json> report = Status::internal("no report");
    try {
      report = s->report();
    } catch (const std::exception& e) {
      report = Status::internal(e.what());
    }
    unsigned interval = kDefaultHeartbeatS;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      s->in_report = false;
      s->cv.notify_all();
      if (s->stopping) break;
      interval = s->state.interval_s;
    }
    Status outcome;
    if (!report.ok()) {
      outcome = report.status().with_context("building the report");
    } else {
      // The current replica, then each other in turn while they cannot answer.
      for (size_t tried = 0; tried < clients.size(); ++tried) {
        const size_t i = (current + tried) % clients.size();
        bool elsewhere = false;
        auto next = send(clients[i], o, *report, &elsewhere);
        if (next.ok()) interval = *next;
        outcome = next.status();
        if (i != current && (next.ok() || !elsewhere)) {
          spdlog::info("cloud {}: heartbeats go to {} now ({} did not answer)", o.cloud_url,
                       urls[i], urls[current]);
          current = i;
        }
        if (!elsewhere) break;
        std::lock_guard<std::mutex> lock(s->mu);
        if (s->stopping) break;
      }
    }
    std::unique_lock<std::mutex> lock(s->mu);
    if (s->stopping) break;
    s->state.url = urls[current];
    s->record(outcome, interval);
    s->cv.wait_for(lock, o.second * s->state.interval_s, [&] { return s->stopping; });
  }
  std::lock_guard<std::mutex> lock(s->mu);
  s->done = true;
  s->cv.notify_all();
}

}  // namespace nimbus::host
