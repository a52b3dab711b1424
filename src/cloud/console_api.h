// The web console's backend in nimbus-cloud (docs/cloud.md, "Web console"): the page and
// its files (console_assets.h), sign-in sessions (console_sessions.h), the JSON API over
// Cloud's operations, Server-Sent Events (console_events.h), per-instance metrics
// (console_metrics.h) and the terminal relay to the instance's host (console_terminal.cpp).
//
//   GET  /console, /console/               index.html
//   GET  /console/assets/NAME              the files of web/console/
//   POST|GET|DELETE /console/api/session   sign in (access key + secret) / who / sign out
//   GET  /console/api/overview|instances|choices|events, /console/api/instances/ID[/metrics]
//   POST /console/api/instances            launch
//   POST /console/api/instances/ID/stop|start|reboot|terminate|type|tags, DELETE .../tags
//   GET  /console/api/instances/ID/terminal (WebSocket)
//
// Everything under /console/api but the session needs the session cookie (401); every POST
// and DELETE also "X-Nimbus-Console: 1" (403). Every reply carries the security headers.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cloud/cloud.h"
#include "cloud/console_events.h"
#include "cloud/console_metrics.h"
#include "cloud/console_sessions.h"
#include "cloud/ec2_api.h"
#include "cloud/reconciler.h"
#include "common/http_message.h"
#include "common/websocket.h"

namespace nimbus::cloud {

struct ConsoleOptions {
  std::chrono::seconds session_ttl{3600};
  size_t max_sessions = 1000;
  size_t max_streams = 100;    // SSE streams
  size_t max_terminals = 100;  // terminal relays
  std::chrono::milliseconds events_poll{1000};
  std::chrono::milliseconds events_keepalive{15000};
  std::chrono::seconds metrics_interval{5};
};

class Console {
 public:
  using Clock = ConsoleSessions::Clock;
  // Opens a VM's serial console on its host (console_terminal.cpp); the default is nimbusd's
  // GET /v1/vms/NAME/console with the host's token (HostApiClient::open_console).
  using TerminalOpener =
      std::function<Result<http::ws::Socket>(const HostRecord& host, const std::string& vm)>;

  Console(Cloud& cloud, HostDriver& driver, ApiCredentials credentials, ConsoleOptions options = {},
          Clock clock = nullptr);
  ~Console();

  void start();  // the metrics sampler
  void stop();   // ends the streams and the sampler

  // The reply for a /console path, nullopt for any other path.
  std::optional<http::Reply> handle(const http::Request& req);

  ConsoleSessions& sessions() { return sessions_; }
  ConsoleMetrics& metrics() { return metrics_; }
  ConsoleEvents& events() { return events_; }
  void set_terminal_opener(TerminalOpener opener) { opener_ = std::move(opener); }
  size_t terminals() const;

  // The JSON bodies (tests, and the event stream's data).
  Ec2Result<nlohmann::json> instances_json();
  Ec2Result<nlohmann::json> overview_json();

 private:
  http::Reply route_api(const http::Request& req, const std::string& rest);
  http::Reply session_route(const http::Request& req);
  http::Reply launch(const http::Request& req);
  http::Reply instance_route(const http::Request& req, const std::string& id,
                             const std::string& verb, const std::string& token);
  http::Reply choices();
  http::Reply events(const std::string& token);
  // console_terminal.cpp: the WebSocket relay of the instance's serial console.
  http::Reply terminal(const http::Request& req, const std::string& id);
  nlohmann::json instance_json(const InstanceRecord& i,
                               const std::map<std::string, std::string>& group_names);

  Cloud& cloud_;
  HostDriver& driver_;
  ConsoleOptions options_;
  ConsoleSessions sessions_;
  ConsoleMetrics metrics_;
  ConsoleEvents events_;
  TerminalOpener opener_;
  mutable std::mutex terminals_mu_;
  size_t terminals_ = 0;
};

}  // namespace nimbus::cloud
