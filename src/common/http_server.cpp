#include "common/http_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/http_stream.h"

namespace nimbus::http {

namespace {

using Clock = std::chrono::steady_clock;

// Requests served on one connection before it is closed (a client reconnects).
constexpr int kMaxRequestsPerConnection = 100;
// After refusing a request whose body was not read (see run_connection).
constexpr int kLingerMs = 1000;
constexpr size_t kLingerBytes = 256 * 1024;

// What the server learnt about the request in progress on this thread (each connection has
// a thread of its own, and httplib calls every hook on it).
struct Exchange {
  bool head_read = false;
  bool handler_ran = false;
  bool must_close = false;  // the stream is no longer at a request boundary
  int reject_status = 0;    // refused before the body is read
  std::string reject_message;
  ConnStream* stream = nullptr;
  // The handler's reply changes protocol (Reply::upgrade): run_connection writes the 101.
  std::function<void(int, std::string)> upgrade;
  std::multimap<std::string, std::string> upgrade_headers;
  std::string upgrade_status_line = "HTTP/1.1 101 Switching Protocols\r\n";  // or 200: a stream
};
thread_local Exchange* t_exchange = nullptr;

const char* code_of(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 408:
      return "RequestTimeout";
    case 411:
      return "LengthRequired";
    case 413:
      return "PayloadTooLarge";
    case 414:
      return "UriTooLong";
    case 416:
      return "RangeNotSatisfiable";
    case 417:
      return "ExpectationFailed";
    case 501:
      return "NotImplemented";
    case 503:
      return "Unavailable";
    default:
      return status >= 500 ? "Internal" : "BadRequest";
  }
}

const char* message_of(int status) {
  switch (status) {
    case 401:
      return "a valid \"Authorization: Bearer TOKEN\" header is required";
    case 404:
      return "no such resource";
    case 413:
      return "the request body is too large";
    case 414:
      return "the request URI is too long";
    case 501:
      return "this transfer encoding is not supported";
    case 503:
      return "the server is busy; try again";
    default:
      return status >= 500 ? "internal error" : "the request is malformed";
  }
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 19 && s.find_first_not_of("0123456789") == std::string::npos;
}

// Refuses ambiguous framing (how requests are smuggled past a proxy; httplib would also
// read "Content-Length: 12abc" as 12). Returns whether the request may go on.
bool check_framing(const httplib::Request& req, size_t max_body, Exchange& ex) {
  const size_t lengths = req.get_header_value_count("Content-Length");
  const bool has_te = req.has_header("Transfer-Encoding");
  ex.reject_status = 400;
  if (has_te && (req.get_header_value_count("Transfer-Encoding") > 1 ||
                 req.get_header_value("Transfer-Encoding") != "chunked")) {
    ex.reject_status = 501;
    ex.reject_message = "only \"Transfer-Encoding: chunked\" is supported";
  } else if (has_te && lengths > 0) {
    ex.reject_message = "the request has both Content-Length and Transfer-Encoding";
  } else if (lengths > 1) {
    ex.reject_message = "the request has more than one Content-Length";
  } else if (lengths == 1 && !all_digits(req.get_header_value("Content-Length"))) {
    ex.reject_message = "the request's Content-Length is not a number";
  } else if (lengths == 1 && std::stoull(req.get_header_value("Content-Length")) > max_body) {
    // At once, not after reading (httplib would skip the whole announced body first).
    ex.reject_status = 413;
  } else {
    ex.reject_status = 0;
  }
  return ex.reject_status == 0;
}

}  // namespace

std::string host_error_body(int /*status*/, std::string_view code, std::string_view message) {
  std::string m;
  for (char c : message) {  // the messages are ours, but keep the JSON valid whatever they hold
    if (c == '"' || c == '\\') m += '\\';
    m += c;
  }
  return fmt::format(R"({{"error": {{"code": "{}", "message": "{}"}}}})", code, m) + "\n";
}

bool bearer_matches(const std::string& header, const std::string& token) {
  const std::string want = "Bearer " + token;
  if (token.empty() || header.size() != want.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < want.size(); i++) diff |= static_cast<unsigned char>(header[i] ^ want[i]);
  return diff == 0;
}

// httplib's request parser and reply writer, driven on connections this class accepted
// (process_request is protected: the one seam httplib offers for this).
class Server::Engine : public httplib::Server {
 public:
  bool process(httplib::Stream& s, bool last, bool& closed,
               const std::function<void(httplib::Request&)>& setup) {
    return process_request(s, last, closed, setup);
  }
};

struct Server::Conn {
  int fd = -1;
  bool pending = true;  // waiting for (or reading) a request head: may be dropped
  bool dropped = false;
  bool upgraded = false;  // handed over to another protocol (Reply::upgrade)
  bool done = false;
  Clock::time_point since;
  std::thread thread;
};

Server::Server(ListenSocket sock, ServerOptions options)
    : sock_(std::move(sock)), options_(std::move(options)), engine_(std::make_unique<Engine>()) {
  if (!options_.error_body) options_.error_body = host_error_body;
  if (::pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
}

Server::~Server() {
  stop();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

void Server::serve(Handler handler) {
  Engine& e = *engine_;
  const ErrorBody error_body = options_.error_body;
  auto fill_error = [error_body](httplib::Response& res, int status, const std::string& message) {
    res.status = status;
    res.set_content(
        error_body(status, code_of(status), message.empty() ? message_of(status) : message),
        "application/json");
  };
  auto route = [handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    if (t_exchange) t_exchange->handler_ran = true;
    Request r{req.method, req.path, {req.params.begin(), req.params.end()}, req.body, {}};
    for (const auto& [name, value] : req.headers) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers.emplace(std::move(lower), value);
    }
    Reply out = handler(r);
    if (out.upgrade) {
      if (!t_exchange || !t_exchange->stream) {
        res.status = 500;
        return;
      }
      // httplib writes a reply of its own after this (with Content-Length, Keep-Alive):
      // it is dropped, and run_connection writes the 101 and hands the connection over.
      t_exchange->upgrade = std::move(out.upgrade);
      t_exchange->upgrade_headers = std::move(out.headers);
      if (out.status == 200) {  // a streamed body (Server-Sent Events) the callback writes
        t_exchange->upgrade_status_line = "HTTP/1.1 200 OK\r\n";
        t_exchange->upgrade_headers.emplace("Content-Type", out.content_type);
        t_exchange->upgrade_headers.emplace("Connection", "close");
      }
      t_exchange->stream->set_discard_writes(true);
      res.status = 101;
      return;
    }
    res.status = out.status;
    for (const auto& [name, value] : out.headers) res.set_header(name, value);
    if (!out.body.empty()) res.set_content(out.body, out.content_type);
  };
  e.Get(".*", route);
  e.Post(".*", route);
  e.Put(".*", route);
  e.Patch(".*", route);
  e.Delete(".*", route);
  e.set_payload_max_length(options_.max_body);
  // Runs after the head is read, before the body: refusals here never read the body.
  e.set_pre_routing_handler([fill_error](const httplib::Request&, httplib::Response& res) {
    Exchange* ex = t_exchange;
    if (!ex || ex->reject_status == 0) return httplib::Server::HandlerResponse::Unhandled;
    fill_error(res, ex->reject_status, ex->reject_message);
    ex->must_close = true;
    return httplib::Server::HandlerResponse::Handled;
  });
  e.set_expect_100_continue_handler([fill_error](const httplib::Request&, httplib::Response& res) {
    Exchange* ex = t_exchange;
    if (!ex || ex->reject_status == 0) return 100;
    fill_error(res, ex->reject_status, ex->reject_message);
    ex->must_close = true;
    return ex->reject_status;
  });
  e.set_error_handler([fill_error](const httplib::Request&, httplib::Response& res) {
    Exchange* ex = t_exchange;
    // An error the server made itself (bad head, body too large or too slow): the stream
    // may not be at a request boundary any more.
    if (ex && !ex->handler_ran) ex->must_close = true;
    if (!res.body.empty()) return;
    fill_error(res, res.status, "");
  });
  e.set_exception_handler([fill_error](const httplib::Request&, httplib::Response& res,
                                       std::exception_ptr) { fill_error(res, 500, ""); });
  acceptor_ = std::thread([this] { accept_loop(); });
}

void Server::accept_loop() {
  for (;;) {
    pollfd p[2] = {{sock_.fd(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
    const int r = ::poll(p, 2, 1000);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      reap_locked();
    }
    if (r <= 0 || !(p[0].revents & POLLIN)) continue;
    const int fd = ::accept4(sock_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of file descriptors or memory: wait a little rather than spin.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                 sizeof(one));  // fails harmlessly on unix sockets
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ || !admit_locked()) {
      lock.unlock();
      const std::string body = options_.error_body(503, code_of(503), message_of(503));
      const std::string reply = fmt::format(
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
          "{}\r\n"
          "Connection: close\r\n\r\n{}",
          body.size(), body);
      [[maybe_unused]] ssize_t n =
          ::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      ::close(fd);
      continue;
    }
    Conn& c = conns_.emplace_back();
    c.fd = fd;
    c.since = Clock::now();
    try {
      c.thread = std::thread([this, &c] { run_connection(&c); });
    } catch (const std::system_error&) {  // no thread to be had: drop this one
      conns_.pop_back();
      ::close(fd);
    }
  }
}

// Room for a new connection: at most max_pending connections without a request head and
// max_connections in all; the oldest pending one makes room (a slow client that held it
// has had its chance; a good client sends its head at once).
bool Server::admit_locked() {
  size_t live = 0, pending = 0;
  Conn* oldest = nullptr;
  for (Conn& c : conns_) {
    if (c.done || c.dropped) continue;
    live++;
    if (c.pending) {
      pending++;
      if (!oldest || c.since < oldest->since) oldest = &c;
    }
  }
  if (pending < options_.max_pending && live < options_.max_connections) return true;
  if (!oldest) return false;
  ::shutdown(oldest->fd, SHUT_RDWR);  // its thread sees EOF and ends
  oldest->dropped = true;
  return true;
}

bool Server::set_pending(Conn* conn, bool pending) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending && (stopping_ || conn->dropped)) return false;
  conn->pending = pending;
  conn->since = Clock::now();
  return true;
}

void Server::reap_locked() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->done) {
      it->thread.join();  // it has nothing left to do but close its socket
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::run_connection(Conn* conn) {
  ConnStream s(conn->fd, options_.head_timeout_ms, options_.body_timeout_ms,
               options_.write_timeout_ms);
  const std::string& token = options_.token;
  bool linger = false;
  for (int n = 1; n <= kMaxRequestsPerConnection; n++) {
    if (!set_pending(conn, true)) break;
    if (!s.wait_request(options_.idle_timeout_ms)) break;
    s.begin_head();
    Exchange ex;
    ex.stream = &s;
    auto setup = [&](httplib::Request& req) {
      ex.head_read = true;
      set_pending(conn, false);
      s.begin_body();
      if (!token.empty() && !bearer_matches(req.get_header_value("Authorization"), token)) {
        ex.reject_status = 401;
      } else if (check_framing(req, options_.max_body, ex) && !req.has_header("Content-Length") &&
                 !req.has_header("Transfer-Encoding")) {
        // No body (RFC 9112 6.3): httplib would read one until EOF while the client waits
        // for the reply.
        req.set_header("Content-Length", "0");
      }
    };
    t_exchange = &ex;
    bool closed = false;
    const bool ok = engine_->process(s, n == kMaxRequestsPerConnection, closed, setup);
    t_exchange = nullptr;
    if (ex.upgrade) {
      s.set_discard_writes(false);
      if (ok && !s.failed())
        run_upgrade(conn, s, ex.upgrade_status_line, ex.upgrade_headers, std::move(ex.upgrade));
      break;
    }
    if (ok && ex.must_close && !s.failed()) linger = true;
    if (!ok || closed || !ex.head_read || ex.must_close || s.failed()) break;
  }
  // Refused before its body was read: the client may still be sending it, and closing
  // with unread data would reset the connection, losing the reply on the way. So: end our
  // side, then drop what comes for a little while (bounded in time and bytes).
  if (linger && set_pending(conn, true)) {
    ::shutdown(conn->fd, SHUT_WR);
    s.drain(kLingerMs, kLingerBytes);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    conn->done = true;  // from here on nobody else touches its fd
  }
  ::shutdown(conn->fd, SHUT_RDWR);
  ::close(conn->fd);
}

// Writes the 101 head and hands the connection over to `upgrade` (Reply::upgrade), with the
// bytes read past the request. Not if the server is stopping: stop() would not know to end it.
void Server::run_upgrade(Conn* conn, ConnStream& s, const std::string& status_line,
                         const std::multimap<std::string, std::string>& headers,
                         std::function<void(int, std::string)> upgrade) {
  std::string head = status_line;
  for (const auto& [name, value] : headers) {
    // The handler's fields; one that could split the head is left out.
    if (name.empty() || name.find_first_of("\r\n: ") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos)
      continue;
    head += fmt::format("{}: {}\r\n", name, value);
  }
  head += "\r\n";
  if (s.write(head.data(), head.size()) != static_cast<ssize_t>(head.size())) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    conn->upgraded = true;  // stop() shuts it down
  }
  try {
    upgrade(conn->fd, s.take_buffered());
  } catch (...) {  // a session's failure ends its connection, never the server
  }
}

void Server::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    // Idle connections end now; a request in progress finishes (its handler may be
    // stopping a VM) and its connection ends after the reply. Upgraded connections (a
    // WebSocket, idle for hours maybe) are shut down: their sessions see the end and return.
    for (Conn& c : conns_) {
      if (!c.done && (c.pending || c.upgraded)) ::shutdown(c.fd, SHUT_RDWR);
    }
  }
  if (wake_[1] >= 0) {
    [[maybe_unused]] ssize_t n = ::write(wake_[1], "x", 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  sock_ = ListenSocket();  // refuse new connections (and remove a unix socket's file)
  std::list<Conn> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.splice(all.begin(), conns_);  // the nodes stay where their threads point
  }
  for (Conn& c : all) {
    if (c.thread.joinable()) c.thread.join();
  }
}

size_t Server::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const Conn& c : conns_) n += c.done ? 0 : 1;
  return n;
}

}  // namespace nimbus::http
