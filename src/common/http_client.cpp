#include "common/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

namespace nimbus::http {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHead = 64 * 1024;  // a reply's status line and headers
constexpr size_t kMaxChunkLine = 1024;  // a chunk-size line with its extensions
constexpr int kMaxInterimReplies = 8;   // 1xx replies skipped before the real one
constexpr size_t kShownBodyText = 200;  // plain-text bodies quoted in error messages

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

std::string duration_text(int ms) {
  return ms % 1000 == 0 ? fmt::format("{} s", ms / 1000) : fmt::format("{} ms", ms);
}

const char* reason_of(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

// The API error codes (status.h's names, and the HTTP-flavoured ones the servers use).
std::optional<Code> code_of_name(std::string_view name) {
  static constexpr Code kAll[] = {
      Code::kInvalidArgument,      Code::kNotFound,         Code::kConflict,
      Code::kInsufficientCapacity, Code::kPermissionDenied, Code::kUnavailable,
      Code::kDeadlineExceeded,     Code::kUnimplemented,    Code::kInternal};
  for (Code c : kAll) {
    if (code_name(c) == name) return c;
  }
  static const std::pair<std::string_view, Code> kHttpNames[] = {
      {"BadRequest", Code::kInvalidArgument},
      {"Unauthorized", Code::kPermissionDenied},
      {"Forbidden", Code::kPermissionDenied},
      {"MethodNotAllowed", Code::kInvalidArgument},
      {"RequestTimeout", Code::kDeadlineExceeded},
      {"LengthRequired", Code::kInvalidArgument},
      {"PayloadTooLarge", Code::kInvalidArgument},
      {"UriTooLong", Code::kInvalidArgument},
      {"RangeNotSatisfiable", Code::kInvalidArgument},
      {"ExpectationFailed", Code::kInvalidArgument},
      {"NotImplemented", Code::kUnimplemented},
  };
  for (const auto& [n, c] : kHttpNames) {
    if (n == name) return c;
  }
  return std::nullopt;
}

// Bytes a header line or the request line may not hold (header injection, smuggling).
bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// One connected socket and the reading of one reply from it, under one deadline.
class Exchange {
 public:
  enum class Fail { kNone, kTimeout, kClosed, kTooLarge, kMalformed, kSocket };

  Exchange(int fd, Clock::time_point deadline, size_t max_body)
      : fd_(fd), deadline_(deadline), max_body_(max_body) {}

  Fail fail() const { return fail_; }
  const std::string& detail() const { return detail_; }
  int sys_error() const { return errno_; }

  // Sends all of `data`. A peer that closes or resets early is not a failure yet: it may
  // have answered already (a server refuses a request before reading its body).
  bool send_all(std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait(POLLOUT)) return false;
      } else {
        return true;  // EPIPE, ECONNRESET: read what the peer said
      }
    }
    return true;
  }

  // Reads the reply to a request with `method`; false: see fail().
  bool read_reply(std::string_view method, Reply& reply) {
    for (int interim = 0;; interim++) {
      if (!read_head(reply)) return false;
      if (reply.status >= 200) break;
      if (reply.status == 101 || interim == kMaxInterimReplies) {
        return malformed(fmt::format("unexpected {} reply", reply.status));
      }
    }
    if (method == "HEAD" || reply.status == 204 || reply.status == 304) return true;
    if (chunked_) return read_chunked(reply.body);
    if (length_) {
      if (*length_ > max_body_) return too_large();
      return read_exactly(*length_, reply.body);
    }
    return read_to_eof(reply.body);
  }

 private:
  bool wait(short events) {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
      if (left <= 0) return failed(Fail::kTimeout);
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) {
        errno_ = errno;
        return failed(Fail::kSocket);
      }
    }
  }

  // More bytes into buf_; false at the peer's end (kClosed) or on failure.
  bool fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    char tmp[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), MSG_DONTWAIT);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) return failed(Fail::kClosed);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait(POLLIN)) return false;
        continue;
      }
      errno_ = errno;
      return failed(errno == ECONNRESET ? Fail::kClosed : Fail::kSocket);
    }
  }

  size_t available() const { return buf_.size() - pos_; }

  // One line without its CRLF (or LF), at most `max` bytes.
  bool read_line(std::string& line, size_t max, const char* what) {
    size_t from = pos_;
    for (;;) {
      const size_t nl = buf_.find('\n', from);
      if (nl != std::string::npos) {
        if (nl - pos_ > max) break;
        line.assign(buf_, pos_, nl - pos_);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        pos_ = nl + 1;
        return true;
      }
      if (available() > max) break;
      from = buf_.size();
      if (!fill()) return false;
    }
    return malformed(fmt::format("{} is over {} bytes", what, max));
  }

  bool read_head(Reply& reply) {
    chunked_ = false;
    te_ = false;
    length_.reset();
    size_t head_bytes = 0;
    std::string line;
    if (!read_line(line, kMaxHead, "the status line")) return false;
    head_bytes += line.size();
    // "HTTP/1.1 200 OK"
    if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 ||
        !std::isdigit(static_cast<unsigned char>(line[7])) || line[8] != ' ' ||
        !all_digits(std::string_view(line).substr(9, 3)) || (line.size() > 12 && line[12] != ' ')) {
      return malformed("not an HTTP/1.x status line");
    }
    reply.status = std::stoi(line.substr(9, 3));
    reply.content_type.clear();
    for (;;) {
      if (!read_line(line, kMaxHead, "the reply head")) return false;
      head_bytes += line.size();
      if (head_bytes > kMaxHead) return malformed("the reply head is too long");
      if (line.empty()) return true;
      const size_t colon = line.find(':');
      if (colon == std::string::npos || colon == 0) return malformed("a header without a name");
      const std::string name = lower(trim(std::string_view(line).substr(0, colon)));
      const std::string_view value = trim(std::string_view(line).substr(colon + 1));
      if (name == "content-length") {
        if (!all_digits(value) || value.size() > 18) return malformed("a bad Content-Length");
        const size_t n = std::stoull(std::string(value));
        if (length_ && *length_ != n) return malformed("two different Content-Lengths");
        length_ = n;
      } else if (name == "transfer-encoding") {
        // Chunked only if it is the last coding; any other: the body runs to the end.
        const std::string v = lower(value);
        chunked_ = v.size() >= 7 && v.compare(v.size() - 7, 7, "chunked") == 0;
        if (!chunked_) length_.reset();
        te_ = true;
      } else if (name == "content-type") {
        reply.content_type = std::string(value);
      }
      if (te_) length_.reset();  // Transfer-Encoding overrides Content-Length (RFC 9112 6.3)
    }
  }

  bool read_exactly(size_t n, std::string& out) {
    while (available() < n) {
      if (!fill()) return false;
    }
    out.append(buf_, pos_, n);
    pos_ += n;
    return true;
  }

  bool read_to_eof(std::string& out) {
    for (;;) {
      if (available() > max_body_ - out.size()) return too_large();
      out.append(buf_, pos_, std::string::npos);
      pos_ = buf_.size();
      if (!fill()) {
        if (fail_ != Fail::kClosed || errno_ != 0) return false;
        fail_ = Fail::kNone;  // the end of the body
        return true;
      }
    }
  }

  bool read_chunked(std::string& out) {
    std::string line;
    for (;;) {
      if (!read_line(line, kMaxChunkLine, "a chunk-size line")) return false;
      const std::string_view hex = trim(std::string_view(line).substr(0, line.find(';')));
      if (hex.empty() || hex.size() > 15 ||
          hex.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
        return malformed("a bad chunk size");
      }
      const size_t size = std::stoull(std::string(hex), nullptr, 16);
      if (size == 0) break;
      if (size > max_body_ - out.size()) return too_large();
      if (!read_exactly(size, out)) return false;
      if (!read_line(line, 2, "a chunk's end")) return false;
      if (!line.empty()) return malformed("a chunk longer than its size");
    }
    size_t trailers = 0;
    do {  // trailers, up to the empty line
      if (!read_line(line, kMaxHead, "a trailer")) return false;
      trailers += line.size();
      if (trailers > kMaxHead) return malformed("the trailers are too long");
    } while (!line.empty());
    return true;
  }

  bool failed(Fail f) {
    fail_ = f;
    return false;
  }
  bool malformed(std::string detail) {
    detail_ = std::move(detail);
    return failed(Fail::kMalformed);
  }
  bool too_large() { return failed(Fail::kTooLarge); }

  int fd_;
  Clock::time_point deadline_;
  size_t max_body_;
  std::string buf_;
  size_t pos_ = 0;
  bool chunked_ = false;
  bool te_ = false;
  std::optional<size_t> length_;
  Fail fail_ = Fail::kNone;
  std::string detail_;
  int errno_ = 0;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Waits for a non-blocking connect to finish; 0 or the errno (ETIMEDOUT at the deadline).
int finish_connect(int fd, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return ETIMEDOUT;
    pollfd p{fd, POLLOUT, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    if (r == 0) return ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
  }
}

}  // namespace

std::string Target::shown() const {
  if (unix_socket) return path;
  return host.find(':') != std::string::npos ? fmt::format("http://[{}]:{}", host, port)
                                             : fmt::format("http://{}:{}", host, port);
}

Result<Target> parse_target(std::string_view text) {
  Target t;
  const auto bad = [&](std::string_view why) {
    return Status::invalid_argument(fmt::format("'{}': {}", text, why));
  };
  if (has_control(text)) return bad("a control character in the address");
  if (text.substr(0, 5) == "unix:") {
    t.unix_socket = true;
    t.path = std::string(text.substr(5));
    if (t.path.empty()) return bad("no socket path after 'unix:'");
    if (t.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return bad(
          fmt::format("a socket path is at most {} bytes", sizeof(sockaddr_un{}.sun_path) - 1));
    }
    return t;
  }
  if (text.substr(0, 8) == "https://") {
    return bad("plain http:// only (use a unix socket or an ssh tunnel)");
  }
  if (text.substr(0, 7) != "http://") return bad("use unix:/PATH or http://HOST:PORT");
  std::string_view rest = text.substr(7);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:PORT
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unbalanced '['");
    t.host = std::string(rest.substr(1, close - 1));
    in6_addr v6{};
    if (inet_pton(AF_INET6, t.host.c_str(), &v6) != 1) return bad("not an IPv6 address in [ ]");
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return bad("not http://HOST:PORT");
      port = rest.substr(close + 2);
      if (port.empty()) return bad("no port after ':'");
    }
  } else {
    const size_t colon = rest.rfind(':');
    t.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return bad("no port after ':'");
    }
  }
  if (t.host.empty() || t.host.find_first_of("/?#@[] ") != std::string::npos) {
    return bad("not http://HOST:PORT");
  }
  if (!port.empty()) {
    if (!all_digits(port) || port.size() > 5 || std::stoi(std::string(port)) < 1 ||
        std::stoi(std::string(port)) > 65535) {
      return bad(fmt::format("bad port '{}' (1 to 65535)", port));
    }
    t.port = std::stoi(std::string(port));
  }
  return t;
}

Result<int> dial(const Target& target, int timeout_ms, std::string_view where) {
  const Clock::time_point connect_deadline =
      Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 1));
  Fd fd;
  int err = 0;
  if (target.unix_socket) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, target.path.data(), target.path.size());
    fd = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) return Status::internal(fmt::format("socket: {}", std::strerror(errno)));
    for (;;) {
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
        err = 0;
        break;
      }
      err = errno;
      if (err == EINTR) continue;
      if (err == EINPROGRESS) {
        err = finish_connect(fd.get(), connect_deadline);
        break;
      }
      // A full accept queue: the server is there but busy; try again until the deadline.
      if (err != EAGAIN) break;
      if (Clock::now() >= connect_deadline) {
        err = ETIMEDOUT;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  } else {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(target.port);
    if (const int rc = ::getaddrinfo(target.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      return Status::unavailable(
          fmt::format("cannot reach {}: {}", where,
                      rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc)));
    }
    err = ECONNREFUSED;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      Fd s(
          ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
      if (s.get() < 0) {
        err = errno;
        continue;
      }
      err = ::connect(s.get(), ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
      if (err == EINPROGRESS) err = finish_connect(s.get(), connect_deadline);
      if (err == 0) {
        const int one = 1;
        ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fd = std::move(s);
        break;
      }
      if (err == ETIMEDOUT) break;  // the deadline is for all addresses together
    }
    ::freeaddrinfo(res);
  }
  if (err != 0) {
    if (err == ETIMEDOUT) {
      return Status::unavailable(fmt::format("cannot reach {}: no connection within {}", where,
                                             duration_text(timeout_ms)));
    }
    const std::string m = fmt::format("cannot reach {}: {}", where, std::strerror(err));
    return err == EACCES || err == EPERM ? Status::permission_denied(m) : Status::unavailable(m);
  }
  return fd.release();
}

Result<Client> Client::create(std::string_view target, ClientOptions options) {
  auto t = parse_target(target);
  if (!t.ok()) return t.status();
  return Client(std::move(*t), std::move(options));
}

Result<Reply> Client::request(std::string_view method, std::string_view path, std::string_view body,
                              std::string_view content_type) const {
  const std::string where = options_.peer.empty()
                                ? target_.shown()
                                : fmt::format("{} at {}", options_.peer, target_.shown());
  const std::string what = fmt::format("{} {}", method, path);
  if (method.empty() ||
      method.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos) {
    return Status::invalid_argument(fmt::format("'{}' is not an HTTP method", method));
  }
  if (path.empty() || path.front() != '/' || has_control(path) ||
      path.find(' ') != std::string_view::npos) {
    return Status::invalid_argument(fmt::format("'{}' is not a request path", path));
  }
  if (has_control(options_.token) || has_control(content_type)) {
    return Status::invalid_argument("a control character in the token or content type");
  }
  for (const auto& [name, value] : options_.headers) {
    if (name.empty() || has_control(name) || has_control(value) ||
        name.find_first_of(": ") != std::string::npos)
      return Status::invalid_argument(fmt::format("'{}' is not a header field to send", name));
  }

  // Connect.
  auto dialed = dial(target_, options_.connect_timeout_ms, where);
  if (!dialed.ok()) return dialed.status();
  Fd fd(*dialed);

  // Send the request and read the reply, all within the read timeout.
  std::string head = fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\n", method, path,
                                 target_.unix_socket ? "localhost"
                                 : target_.host.find(':') != std::string::npos
                                     ? fmt::format("[{}]:{}", target_.host, target_.port)
                                     : fmt::format("{}:{}", target_.host, target_.port));
  head += "Accept: application/json\r\nConnection: close\r\n";
  if (!options_.token.empty()) head += fmt::format("Authorization: Bearer {}\r\n", options_.token);
  for (const auto& [name, value] : options_.headers) head += fmt::format("{}: {}\r\n", name, value);
  if (!body.empty()) head += fmt::format("Content-Type: {}\r\n", content_type);
  if (!body.empty() || (method != "GET" && method != "HEAD")) {
    head += fmt::format("Content-Length: {}\r\n", body.size());
  }
  head += "\r\n";
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(std::max(options_.read_timeout_ms, 1));
  Exchange ex(fd.get(), deadline, options_.max_reply_body);
  Reply reply;
  if (ex.send_all(head) && ex.send_all(body) && ex.read_reply(method, reply)) return reply;
  switch (ex.fail()) {
    case Exchange::Fail::kTimeout:
      return Status::deadline_exceeded(fmt::format("no reply from {} to {} within {}", where, what,
                                                   duration_text(options_.read_timeout_ms)));
    case Exchange::Fail::kClosed:
      return Status::unavailable(
          fmt::format("{} closed the connection before its reply to {} was complete{}", where, what,
                      ex.sys_error() ? fmt::format(" ({})", std::strerror(ex.sys_error())) : ""));
    case Exchange::Fail::kTooLarge:
      return Status::internal(fmt::format("the reply of {} to {} is over {} bytes", where, what,
                                          options_.max_reply_body));
    case Exchange::Fail::kMalformed:
      return Status::internal(
          fmt::format("{} sent a malformed reply to {}: {}", where, what, ex.detail()));
    default:
      return Status::unavailable(fmt::format("the connection to {} failed during {}: {}", where,
                                             what, std::strerror(ex.sys_error())));
  }
}

bool is_success(const Reply& reply) { return reply.status >= 200 && reply.status < 300; }

Code code_of_http_status(int status) {
  switch (status) {
    case 401:
    case 403:
      return Code::kPermissionDenied;
    case 404:
      return Code::kNotFound;
    case 408:
    case 504:
      return Code::kDeadlineExceeded;
    case 409:
      return Code::kConflict;
    case 429:
    case 502:
    case 503:
      return Code::kUnavailable;
    case 501:
      return Code::kUnimplemented;
    default:
      if (status >= 400 && status < 500) return Code::kInvalidArgument;
      return Code::kInternal;
  }
}

Status reply_error(const Reply& reply, std::string* api_code) {
  if (api_code) api_code->clear();
  Code code = code_of_http_status(reply.status);
  std::string message;
  const nlohmann::json j =
      reply.body.empty() ? nlohmann::json() : nlohmann::json::parse(reply.body, nullptr, false);
  if (j.is_object()) {
    if (auto e = j.find("error"); e != j.end() && e->is_object()) {
      if (auto c = e->find("code"); c != e->end() && c->is_string()) {
        const std::string name = c->get<std::string>();
        if (api_code) *api_code = name;
        if (auto known = code_of_name(name)) code = *known;
      }
      if (auto m = e->find("message"); m != e->end() && m->is_string()) {
        message = m->get<std::string>();
      }
    } else if (auto f = j.find("fault_message"); f != j.end() && f->is_string()) {
      message = f->get<std::string>();
    }
  }
  if (message.empty()) {
    const char* reason = reason_of(reply.status);
    message = *reason ? fmt::format("HTTP {} {}", reply.status, reason)
                      : fmt::format("HTTP {}", reply.status);
    const std::string_view text = trim(reply.body);
    if (!text.empty() && text.size() <= kShownBodyText && j.is_discarded() && !has_control(text)) {
      message += fmt::format(": {}", text);
    }
  }
  if (is_success(reply)) code = Code::kInternal;  // not an error reply: a caller's mistake
  return Status(code, std::move(message));
}

}  // namespace nimbus::http
