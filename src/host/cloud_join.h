// nimbusd joined to a control plane (`nimbusd --cloud URL --zone ZONE`, docs/nimbusd.md
// "Joining a cloud"): a thread sends a heartbeat right at start and then every interval the
// control plane asks for, `POST URL/nimbus/v1/hosts/heartbeat` with the join token, saying
// who this host is, where its TCP API is (and that API's token), and what it has: the host,
// its VMs and its images in the very shapes of GET /v1/host, /v1/vms and /v1/images.
// Failures are logged once per change of error and retried every interval, forever;
// stop() ends the wait at once and leaves a heartbeat still in flight behind after ~1 s.
//
// URL may list several control plane replicas, comma-separated (URL1,URL2,...): the
// heartbeats go to the one that answered last; one that cannot be reached, times out or
// answers 5xx is left for the next in turn, at once (a replica killed costs one heartbeat
// its timeout, not an interval). A 4xx (a bad token, a refused report) is the answer.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "host/host_types.h"

namespace nimbus::host {

constexpr unsigned kDefaultHeartbeatS = 2;  // until the control plane says otherwise
constexpr unsigned kMinHeartbeatS = 1, kMaxHeartbeatS = 60;
constexpr char kHeartbeatPath[] = "/nimbus/v1/hosts/heartbeat";

struct CloudJoinOptions {
  std::string cloud_url;   // http://HOST[:PORT], or several comma-separated
  std::string join_token;  // sent as "Authorization: Bearer JOIN_TOKEN"
  std::string host_id;
  std::string zone;
  std::string api_url;    // where the control plane reaches this nimbusd's TCP API
  std::string api_token;  // that API's bearer token
  // The tunnel's advertised endpoint (--tunnel-listen), sent as "tunnel_endpoint"; and what
  // takes a reply's "tunnel_peers" (the host's new peer set). Empty/null: no tunnel.
  std::string tunnel_endpoint;
  std::function<Status(const nlohmann::json&)> on_tunnel_peers;
  // How long one second of interval_s lasts (tests shorten it).
  std::chrono::milliseconds second{1000};
  int connect_timeout_ms = 2000;
  int request_timeout_ms = 5000;  // the whole exchange once connected
  // How long stop() waits for a heartbeat in flight before leaving it to end by itself.
  std::chrono::milliseconds stop_grace{1000};
};

// {"host": ..., "vms": [...], "images": [...]}: what a heartbeat carries besides who sends it.
using HeartbeatReport = std::function<Result<nlohmann::json>()>;

// The report of `ops`, built with the API's own to_json (host_json.h, image_store.h).
Result<nlohmann::json> host_report(HostOps& ops);

// 1-63 of [a-z0-9-], starting with a letter (as VM names).
bool valid_host_id(const std::string& id);
// An EC2-style zone name, loosely: [a-z0-9-]+ ending with a letter ("us-east-1a", "lab-a").
bool valid_zone(const std::string& zone);
// kInvalidArgument unless `url` is http://HOST[:PORT] (a trailing "/" allowed, no path), or
// several of them separated by commas.
Status check_cloud_url(const std::string& url);
// The URLs of a --cloud value (split at commas; not checked).
std::vector<std::string> split_cloud_urls(const std::string& urls);

class CloudJoin {
 public:
  CloudJoin(CloudJoinOptions options, HeartbeatReport report);
  ~CloudJoin();  // stop()
  CloudJoin(const CloudJoin&) = delete;
  CloudJoin& operator=(const CloudJoin&) = delete;

  // Checks the URL (kInvalidArgument) and starts the thread; the first heartbeat goes at once.
  Status start();
  // Ends the wait at once; a heartbeat in flight gets `stop_grace`, then is left behind (it
  // touches nothing of the caller's when it ends). The report is never built after stop().
  void stop();

  struct State {
    bool joined = false;  // the last heartbeat was answered 200 {"interval_s": N}
    uint64_t sent = 0, answered = 0;
    unsigned interval_s = kDefaultHeartbeatS;
    std::string error;  // the last failure's message ("" after a success)
    std::string url;    // the replica the heartbeats go to (the last that answered)
  };
  State state() const;

 private:
  struct Shared;
  static void run(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace nimbus::host
