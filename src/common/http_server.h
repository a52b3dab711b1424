// The one HTTP/1.1 server of Nimbus's APIs (the VMM's unix socket, nimbusd's unix socket
// and TCP port, later the control plane): cpp-httplib parses requests and writes replies,
// this class owns everything around them, hardened against hostile clients:
//  - the address is validated and bound before any thread starts (http_listen.h);
//  - each connection has a thread of its own (up to `max_connections`): a slow client
//    holds only its own thread, never one that a good request waits for;
//  - a request head must arrive within `head_timeout_ms` (total, not per read), an idle
//    keep-alive connection is closed after `idle_timeout_ms`; connections that have not
//    yet sent a whole head are at most `max_pending`, the oldest is dropped for a new one;
//  - with a token, a request without "Authorization: Bearer TOKEN" gets 401 before its body
//    is read, and its connection is closed;
//  - a body without Content-Length (and not chunked) is empty (HTTP/1.1), not "until EOF";
//    a bad Content-Length or Transfer-Encoding is refused; bodies are capped (413);
//  - a handler runs only for a request whose head and body were read whole: a request
//    answered with an error by the server itself never reaches it;
//  - every error the server makes itself has the API's error shape (`error_body`).
//  - a handler may hand its connection over to another protocol (Reply::upgrade, a
//    WebSocket): the server writes the 101 head, drops httplib's own reply, and calls the
//    upgrade on the connection's thread with the bytes it had read past the request; the
//    server's timeouts no longer apply, the connection still counts against
//    max_connections, and stop() shuts it down and waits for the upgrade to return.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/http_listen.h"
#include "common/http_message.h"
#include "common/status.h"

namespace nimbus::http {

class ConnStream;

using Handler = std::function<Reply(const Request&)>;
// The body of an error reply in the API's shape, e.g. {"error": {"code", "message"}}.
using ErrorBody =
    std::function<std::string(int status, std::string_view code, std::string_view message)>;

struct ServerOptions {
  std::string token;  // non-empty: every request must carry "Authorization: Bearer TOKEN"
  size_t max_body = 64 * 1024;
  ErrorBody error_body;  // default: {"error": {"code": ..., "message": ...}}
  int head_timeout_ms = 5000;
  int idle_timeout_ms = 5000;
  int body_timeout_ms = 10000;  // the whole body, once the head is in
  int write_timeout_ms = 10000;
  size_t max_pending = 64;
  size_t max_connections = 512;
};

// The JSON error shape of nimbusd: {"error": {"code": CODE, "message": MESSAGE}}.
std::string host_error_body(int status, std::string_view code, std::string_view message);

// Constant-time comparison of an Authorization header value with "Bearer TOKEN".
bool bearer_matches(const std::string& header, const std::string& token);

class Server {
 public:
  // Takes a bound listening socket (listen_unix / listen_tcp); serves nothing yet.
  Server(ListenSocket sock, ServerOptions options);
  ~Server();  // stops: no new connections, idle ones closed, running handlers finish
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts the accept thread; `handler` runs on connection threads.
  void serve(Handler handler);
  void stop();
  int port() const { return sock_.port(); }

  size_t connections() const;  // open connections (for tests)

 private:
  class Engine;
  struct Conn;
  void accept_loop();
  void run_connection(Conn* conn);
  void run_upgrade(Conn* conn, ConnStream& s, const std::string& status_line,
                   const std::multimap<std::string, std::string>& headers,
                   std::function<void(int, std::string)> upgrade);
  bool admit_locked();                         // room for one more connection?
  bool set_pending(Conn* conn, bool pending);  // false: stopping
  void reap_locked();

  ListenSocket sock_;
  ServerOptions options_;
  std::unique_ptr<Engine> engine_;
  int wake_[2] = {-1, -1};  // a pipe that ends the accept loop
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::list<Conn> conns_;
  bool stopping_ = false;
};

}  // namespace nimbus::http
