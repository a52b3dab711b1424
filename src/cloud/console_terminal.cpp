// The terminal relay (GET /console/api/instances/ID/terminal): the browser's WebSocket is
// relayed to the instance's serial console on its host (nimbusd's GET /v1/vms/NAME/console,
// a WebSocket too): the host's frames to the browser as binary frames, the browser's text or
// binary frames to the host. Either side ending ends both; the VM runs on.
#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cloud/console_api.h"
#include "host/host_api_client.h"

namespace nimbus::cloud {

namespace {

constexpr size_t kMaxBrowserMessage = 64 * 1024;  // larger closes the terminal (1009)

http::Reply terminal_error(int status, const std::string& code, const std::string& message) {
  return http::Reply{status,
                     nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump(
                         -1, ' ', false, nlohmann::json::error_handler_t::replace) +
                         "\n",
                     "application/json"};
}

// Origin must be this very endpoint (http://HOST or https://HOST, HOST as the browser sent
// it): another site's page cannot open a terminal with the user's cookie.
bool same_origin(const http::Request& req) {
  const std::string origin = req.header("origin"), host = req.header("host");
  if (host.empty() || origin.empty()) return false;
  return origin == "http://" + host || origin == "https://" + host;
}

}  // namespace

size_t Console::terminals() const {
  std::lock_guard<std::mutex> lock(terminals_mu_);
  return terminals_;
}

http::Reply Console::terminal(const http::Request& req, const std::string& id) {
  if (!same_origin(req))
    return terminal_error(403, "Forbidden", "the terminal's Origin must be this console");
  auto inst = cloud_.instance(id);
  if (!inst.ok()) return terminal_error(404, inst.error().code, inst.error().message);
  if (inst->state != InstanceState::kRunning || inst->host.empty())
    return terminal_error(409, "IncorrectInstanceState",
                          fmt::format("instance {} is {}: its console is there while it runs", id,
                                      state_name(inst->state)));
  auto kv = cloud_.store().get(kHostsPrefix + inst->host);
  if (!kv.ok() || !*kv) return terminal_error(503, "Unavailable", "its host is not known");
  auto host = host_from_json((*kv)->value);
  if (!host.ok()) return terminal_error(503, "Unavailable", "its host's record is unreadable");
  {
    std::lock_guard<std::mutex> lock(terminals_mu_);
    if (terminals_ >= options_.max_terminals)
      return terminal_error(503, "TooManyTerminals", "too many terminals are open");
    ++terminals_;
  }
  struct Slot {  // released when the relay ends or the reply is dropped unserved
    Console* console;
    ~Slot() {
      std::lock_guard<std::mutex> lock(console->terminals_mu_);
      --console->terminals_;
    }
  };
  std::shared_ptr<Slot> slot(new Slot{this});
  // The host's console first, so that a refusal is an HTTP status the page can show.
  Result<http::ws::Socket> upstream =
      opener_ ? opener_(*host, id) : Status::unavailable("no terminal opener");
  if (!opener_) {
    auto client = host::HostApiClient::create(host->api_url, host->api_token);
    upstream = client.ok() ? client->open_console(id) : Result<http::ws::Socket>(client.status());
  }
  if (!upstream.ok())
    return terminal_error(
        502, "HostConsoleUnavailable",
        fmt::format("the console of {} on host {}: {}", id, host->id, upstream.message()));
  auto hostside = std::make_shared<http::ws::Socket>(std::move(*upstream));
  // The session the terminal was opened in: when it expires or signs out, the terminal ends
  // too (checked every second by a watcher; 1008, as a policy ends it).
  const std::string token = ConsoleSessions::cookie_token(req.header("cookie"));
  auto accepted = http::ws::accept(
      req,
      [this, hostside, slot, token](http::ws::Socket& browser) {
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        std::thread watch([&] {
          std::unique_lock<std::mutex> lock(mu);
          while (!cv.wait_for(lock, std::chrono::seconds(1), [&] { return done; })) {
            if (sessions_.find(token)) continue;
            (void)browser.send_close(http::ws::kClosePolicy, "the session ended: sign in again");
            browser.shutdown();
            hostside->shutdown();
            return;
          }
        });
        std::thread out([&] {  // host -> browser
          for (;;) {
            auto m = hostside->read();
            if (!m.ok() || m->kind == http::ws::Message::kClose) break;
            if (!browser.send_binary(m->data).ok()) break;
          }
          (void)browser.send_close(http::ws::kCloseNormal, "the console ended");
          browser.shutdown();
        });
        for (;;) {  // browser -> host
          auto m = browser.read();
          if (!m.ok() || m->kind == http::ws::Message::kClose) break;
          if (!hostside->send_binary(m->data).ok()) break;
        }
        (void)hostside->send_close(http::ws::kCloseNormal, "the viewer left");
        hostside->shutdown();
        out.join();
        {
          std::lock_guard<std::mutex> lock(mu);
          done = true;
        }
        cv.notify_all();
        watch.join();
      },
      kMaxBrowserMessage);
  if (!accepted.ok()) return terminal_error(400, "BadRequest", accepted.message());
  return *accepted;
}

}  // namespace nimbus::cloud
