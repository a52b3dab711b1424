#include "common/websocket.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <utility>

#include "common/http_client.h"

namespace nimbus::http::ws {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t kMaxReplyHead = 16 * 1024;  // the client's limit on the 101's head
constexpr size_t kMaxErrorBody = 64 * 1024;  // of a refusal, for its message
constexpr size_t kReadChunk = 16 * 1024;

constexpr uint8_t kOpCont = 0x0, kOpText = 0x1, kOpBinary = 0x2, kOpClose = 0x8, kOpPing = 0x9,
                  kOpPong = 0xA;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const unsigned char* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (i + 1 < n ? uint32_t{p[i + 1]} << 8 : 0) |
                       (i + 2 < n ? uint32_t{p[i + 2]} : 0);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < n ? kB64[(v >> 6) & 63] : '=';
    out += i + 2 < n ? kB64[v & 63] : '=';
  }
  return out;
}

// The number of bytes `text` decodes to, if it is canonical padded base64.
std::optional<size_t> base64_size(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && text[text.size() - 1 - pad] == '=') pad++;
  for (size_t i = 0; i < text.size() - pad; i++) {
    if (!std::strchr(kB64, text[i]) || text[i] == '\0') return std::nullopt;
  }
  return text.size() / 4 * 3 - pad;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether the comma-separated list `value` holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (lower(trim(value.substr(0, comma))) == token) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; k++) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

bool valid_close_code(uint32_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

void random_bytes(unsigned char* p, size_t n) {
  if (RAND_bytes(p, static_cast<int>(n)) == 1) return;
  // OpenSSL's generator failed (no entropy?): still unpredictable enough for a mask.
  thread_local std::mt19937_64 gen{std::random_device{}()};
  for (size_t i = 0; i < n; i++) p[i] = static_cast<unsigned char>(gen());
}

int ms_left(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

}  // namespace

std::string accept_key(std::string_view key) {
  const std::string s = std::string(key) + std::string(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  return base64(digest, sizeof(digest));
}

// ---------------------------------------------------------------------------------------
// Socket

struct Socket::Impl {
  int fd = -1;
  Role role = Role::kServer;
  size_t max_message = kDefaultMaxMessage;
  int frame_ms = kDefaultFrameTimeoutMs;
  int write_ms = kDefaultWriteTimeoutMs;

  // Read side (one reader at a time).
  std::string in;
  size_t in_pos = 0;
  bool read_done = false;  // a Close was received, or reading failed

  // Send side.
  std::mutex send_mu;
  bool close_sent = false;
  bool send_broken = false;

  std::atomic<bool> shut{false};

  enum class Fill { kOk, kEof, kTimeout, kError };

  size_t buffered() const { return in.size() - in_pos; }

  // Until `need` bytes are buffered; no deadline: wait as long as it takes.
  Fill fill(size_t need, const Clock::time_point* deadline) {
    while (buffered() < need) {
      if (shut.load()) return Fill::kEof;
      pollfd p{fd, POLLIN, 0};
      const int r = ::poll(&p, 1, deadline ? ms_left(*deadline) : 60'000);
      if (r < 0 && errno != EINTR) return Fill::kError;
      if (r <= 0) {
        if (deadline && Clock::now() >= *deadline) return Fill::kTimeout;
        continue;
      }
      if (in_pos > 0 && (in_pos == in.size() || in_pos >= 64 * 1024)) {
        in.erase(0, in_pos);
        in_pos = 0;
      }
      const size_t old = in.size();
      in.resize(old + kReadChunk);
      const ssize_t n = ::recv(fd, in.data() + old, kReadChunk, MSG_DONTWAIT);
      in.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n == 0) return Fill::kEof;
      if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return Fill::kError;
    }
    return Fill::kOk;
  }

  // Writes all of `data` within the write timeout; false (and the socket shut down) if not.
  Status write_all(std::string_view data) {
    const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(write_ms);
    size_t done = 0;
    while (done < data.size()) {
      if (shut.load()) return broken(Status::unavailable("the WebSocket was shut down"));
      const ssize_t n =
          ::send(fd, data.data() + done, data.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        return broken(Status::unavailable(
            fmt::format("the WebSocket's peer is gone: {}", std::strerror(errno))));
      }
      if (Clock::now() >= deadline) {
        return broken(Status::deadline_exceeded(
            fmt::format("the WebSocket's peer did not read for {} ms", write_ms)));
      }
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, std::max(ms_left(deadline), 1));
    }
    return Status();
  }

  Status broken(Status s) {
    send_broken = true;
    shut.store(true);
    ::shutdown(fd, SHUT_RDWR);
    return s;
  }

  // One whole frame, under send_mu.
  Status send_frame_locked(uint8_t opcode, std::string_view payload) {
    if (send_broken || shut.load()) return Status::unavailable("the WebSocket is closed");
    std::string frame;
    frame.reserve(payload.size() + 14);
    frame += static_cast<char>(0x80 | opcode);
    const uint8_t mask_bit = role == Role::kClient ? 0x80 : 0;
    const uint64_t n = payload.size();
    if (n < 126) {
      frame += static_cast<char>(mask_bit | n);
    } else if (n <= 0xFFFF) {
      frame += static_cast<char>(mask_bit | 126);
      frame += static_cast<char>(n >> 8);
      frame += static_cast<char>(n & 0xFF);
    } else {
      frame += static_cast<char>(mask_bit | 127);
      for (int i = 7; i >= 0; i--) frame += static_cast<char>((n >> (8 * i)) & 0xFF);
    }
    if (role == Role::kClient) {
      unsigned char mask[4];
      random_bytes(mask, sizeof(mask));
      frame.append(reinterpret_cast<const char*>(mask), 4);
      const size_t at = frame.size();
      frame.append(payload);
      for (size_t i = 0; i < n; i++) frame[at + i] = static_cast<char>(frame[at + i] ^ mask[i & 3]);
    } else {
      frame.append(payload);
    }
    return write_all(frame);
  }

  Status send_frame(uint8_t opcode, std::string_view payload) {
    std::lock_guard<std::mutex> lock(send_mu);
    if (close_sent && opcode != kOpClose)
      return Status::unavailable("the WebSocket is closing (a Close was sent)");
    return send_frame_locked(opcode, payload);
  }

  Status send_close(uint16_t code, std::string_view reason) {
    std::lock_guard<std::mutex> lock(send_mu);
    if (close_sent) return Status();
    close_sent = true;
    std::string payload;
    if (code != kCloseNoStatus) {
      payload += static_cast<char>(code >> 8);
      payload += static_cast<char>(code & 0xFF);
      payload.append(reason);
    }
    return send_frame_locked(kOpClose, payload);
  }

  // A protocol violation by the peer: a Close with `code`, then the error.
  Status fail(uint16_t code, const std::string& why) {
    read_done = true;
    (void)send_close(code, why.size() <= 123 ? std::string_view(why) : std::string_view());
    return Status::invalid_argument(fmt::format("WebSocket closed ({}): {}", code, why));
  }

  Status fill_error(Fill f) {
    read_done = true;
    switch (f) {
      case Fill::kTimeout:
        (void)broken(Status());
        return Status::deadline_exceeded(
            fmt::format("a WebSocket frame did not arrive whole within {} ms", frame_ms));
      case Fill::kEof:
        return Status::unavailable("the WebSocket's peer closed the connection without a Close");
      default:
        return Status::unavailable(
            fmt::format("reading the WebSocket failed: {}", std::strerror(errno)));
    }
  }

  Result<Message> read() {
    if (read_done) return Status::conflict("the WebSocket is closed");
    Message msg;
    bool in_message = false;  // fragments of a data message are being gathered
    for (;;) {
      // The next frame: waiting for its first byte is untimed, the rest is not.
      if (Fill f = fill(1, nullptr); f != Fill::kOk) return fill_error(f);
      const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(frame_ms);
      if (Fill f = fill(2, &deadline); f != Fill::kOk) return fill_error(f);
      const auto b0 = static_cast<uint8_t>(in[in_pos]);
      const auto b1 = static_cast<uint8_t>(in[in_pos + 1]);
      const bool fin = b0 & 0x80;
      const uint8_t opcode = b0 & 0x0F;
      const bool masked = b1 & 0x80;
      const uint8_t len7 = b1 & 0x7F;
      if (b0 & 0x70) return fail(kCloseProtocolError, "reserved bits set");
      if (opcode != kOpCont && opcode != kOpText && opcode != kOpBinary && opcode != kOpClose &&
          opcode != kOpPing && opcode != kOpPong)
        return fail(kCloseProtocolError, fmt::format("unknown opcode {}", opcode));
      const bool control = opcode & 0x8;
      if (control && !fin) return fail(kCloseProtocolError, "a fragmented control frame");
      if (control && len7 > 125) return fail(kCloseProtocolError, "a control frame over 125 bytes");
      if (role == Role::kServer && !masked)
        return fail(kCloseProtocolError, "an unmasked frame from a client");
      if (role == Role::kClient && masked)
        return fail(kCloseProtocolError, "a masked frame from a server");
      if (!control) {
        if (opcode == kOpCont && !in_message)
          return fail(kCloseProtocolError, "a continuation frame outside a message");
        if (opcode != kOpCont && in_message)
          return fail(kCloseProtocolError, "a new message inside a fragmented one");
      }
      const size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
      const size_t head = 2 + ext + (masked ? 4 : 0);
      if (Fill f = fill(head, &deadline); f != Fill::kOk) return fill_error(f);
      uint64_t len = len7;
      if (ext > 0) {
        len = 0;
        for (size_t i = 0; i < ext; i++)
          len = (len << 8) | static_cast<uint8_t>(in[in_pos + 2 + i]);
        if (len >> 63) return fail(kCloseProtocolError, "a frame length over 2^63");
      }
      // Checked before reading a byte of the payload: a huge length costs nothing.
      if (!control && len > max_message - std::min(max_message, msg.data.size()))
        return fail(kCloseTooBig, fmt::format("a message over {} bytes", max_message));
      if (Fill f = fill(head + len, &deadline); f != Fill::kOk) return fill_error(f);
      unsigned char mask[4] = {0, 0, 0, 0};
      if (masked) std::memcpy(mask, in.data() + in_pos + 2 + ext, 4);
      std::string payload = in.substr(in_pos + head, len);
      in_pos += head + len;
      if (masked) {
        for (size_t i = 0; i < payload.size(); i++)
          payload[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
      }

      if (opcode == kOpPing) {
        std::lock_guard<std::mutex> lock(send_mu);
        if (!close_sent) {
          if (Status s = send_frame_locked(kOpPong, payload); !s.ok()) {
            read_done = true;
            return s;
          }
        }
        continue;
      }
      if (opcode == kOpPong) continue;
      if (opcode == kOpClose) {
        uint16_t code = kCloseNoStatus;
        std::string reason;
        if (payload.size() == 1) return fail(kCloseProtocolError, "a Close payload of 1 byte");
        if (payload.size() >= 2) {
          code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                       static_cast<uint8_t>(payload[1]));
          if (!valid_close_code(code))
            return fail(kCloseProtocolError, fmt::format("close code {} is not allowed", code));
          reason = payload.substr(2);
          if (!valid_utf8(reason)) return fail(kCloseInvalidData, "a close reason not UTF-8");
        }
        read_done = true;
        (void)send_close(code, {});  // echo the code (none for none), unless we closed first
        Message m;
        m.kind = Message::kClose;
        m.data = std::move(reason);
        m.close_code = code;
        return m;
      }
      if (opcode != kOpCont) {
        in_message = true;
        msg.kind = opcode == kOpText ? Message::kText : Message::kBinary;
      }
      msg.data += payload;
      if (!fin) continue;
      if (msg.kind == Message::kText && !valid_utf8(msg.data))
        return fail(kCloseInvalidData, "a text message that is not UTF-8");
      return msg;
    }
  }
};

Socket::Socket() = default;

Socket::Socket(int fd, Role role, size_t max_message, std::string already_read)
    : impl_(std::make_unique<Impl>()) {
  impl_->fd = fd;
  impl_->role = role;
  impl_->max_message = max_message;
  impl_->in = std::move(already_read);
}

Socket::~Socket() {
  if (impl_ && impl_->fd >= 0) ::close(impl_->fd);
}

Socket::Socket(Socket&&) noexcept = default;

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    if (impl_ && impl_->fd >= 0) ::close(impl_->fd);
    impl_ = std::move(o.impl_);
  }
  return *this;
}

Result<Message> Socket::read() {
  if (!impl_) return Status::unavailable("no WebSocket");
  return impl_->read();
}

Status Socket::send_text(std::string_view text) {
  if (!impl_) return Status::unavailable("no WebSocket");
  if (!valid_utf8(text)) return Status::invalid_argument("a WebSocket text message must be UTF-8");
  return impl_->send_frame(kOpText, text);
}

Status Socket::send_binary(std::string_view data) {
  if (!impl_) return Status::unavailable("no WebSocket");
  return impl_->send_frame(kOpBinary, data);
}

Status Socket::send_close(uint16_t code, std::string_view reason) {
  if (!impl_) return Status::unavailable("no WebSocket");
  if (!valid_close_code(code))
    return Status::invalid_argument(fmt::format("{} is not a close code to send", code));
  if (reason.size() > 123 || !valid_utf8(reason))
    return Status::invalid_argument("a close reason is at most 123 bytes of UTF-8");
  return impl_->send_close(code, reason);
}

Status Socket::send_ping(std::string_view payload) {
  if (!impl_) return Status::unavailable("no WebSocket");
  if (payload.size() > 125) return Status::invalid_argument("a ping carries at most 125 bytes");
  return impl_->send_frame(kOpPing, payload);
}

void Socket::shutdown() {
  if (!impl_) return;
  impl_->shut.store(true);
  ::shutdown(impl_->fd, SHUT_RDWR);
}

int Socket::fd() const { return impl_ ? impl_->fd : -1; }

void Socket::set_frame_timeout_ms(int ms) {
  if (impl_) impl_->frame_ms = std::max(ms, 1);
}

void Socket::set_write_timeout_ms(int ms) {
  if (impl_) impl_->write_ms = std::max(ms, 1);
}

void Socket::set_max_message(size_t bytes) {
  if (impl_) impl_->max_message = bytes;
}

// ---------------------------------------------------------------------------------------
// The handshake

Result<Reply> accept(const Request& req, std::function<void(Socket&)> session, size_t max_message) {
  if (req.method != "GET") {
    return Status::invalid_argument(
        fmt::format("a WebSocket handshake is a GET, not {}", req.method));
  }
  if (!has_token(req.header("upgrade"), "websocket"))
    return Status::invalid_argument("a WebSocket handshake needs \"Upgrade: websocket\"");
  if (!has_token(req.header("connection"), "upgrade"))
    return Status::invalid_argument("a WebSocket handshake needs \"Connection: Upgrade\"");
  if (trim(req.header("sec-websocket-version")) != "13")
    return Status::invalid_argument("a WebSocket handshake needs \"Sec-WebSocket-Version: 13\"");
  const std::string key(trim(req.header("sec-websocket-key")));
  if (base64_size(key) != std::optional<size_t>(16))
    return Status::invalid_argument("Sec-WebSocket-Key must be the base64 of 16 bytes");
  Reply reply;
  reply.status = 101;
  reply.content_type.clear();
  reply.headers = {{"Upgrade", "websocket"},
                   {"Connection", "Upgrade"},
                   {"Sec-WebSocket-Accept", accept_key(key)}};
  reply.upgrade = [session = std::move(session), max_message](int fd, std::string already_read) {
    // The server closes `fd` when this returns: the Socket owns a duplicate.
    const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return;
    Socket s(own, Role::kServer, max_message, std::move(already_read));
    session(s);
  };
  return reply;
}

namespace {

Status send_all(int fd, std::string_view data, Clock::time_point deadline) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::send(fd, data.data() + done, data.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
      return Status::unavailable(std::strerror(errno));
    if (Clock::now() >= deadline)
      return Status::deadline_exceeded("the handshake was not sent in time");
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, std::max(ms_left(deadline), 1));
  }
  return Status();
}

// Reads the reply head (through "\r\n\r\n") into `head`, and what came after into `rest`.
Status read_head(int fd, Clock::time_point deadline, std::string& head, std::string& rest) {
  std::string buf;
  for (;;) {
    const size_t end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      head = buf.substr(0, end + 2);
      rest = buf.substr(end + 4);
      return Status();
    }
    if (buf.size() > kMaxReplyHead)
      return Status::internal("the handshake's reply head is too long");
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno != EINTR) return Status::unavailable(std::strerror(errno));
    if (r <= 0) {
      if (Clock::now() >= deadline) return Status::deadline_exceeded("no handshake reply in time");
      continue;
    }
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
    if (n == 0) return Status::unavailable("the server closed the connection during the handshake");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return Status::unavailable(std::strerror(errno));
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

Result<Socket> connect(const std::string& url,
                       const std::multimap<std::string, std::string>& headers, int timeout_ms,
                       size_t max_message) {
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 1));
  std::string target_text, path;
  if (url.rfind("unix:", 0) == 0) {
    const size_t sep = url.rfind(":/");
    if (sep == std::string::npos || sep < 5)
      return Status::invalid_argument(fmt::format("'{}': use unix:/path/to.sock:/PATH", url));
    target_text = url.substr(0, sep);
    path = url.substr(sep + 1);
  } else if (url.rfind("ws://", 0) == 0) {
    const size_t slash = url.find('/', 5);
    target_text = "http://" + url.substr(5, slash == std::string::npos ? slash : slash - 5);
    path = slash == std::string::npos ? "/" : url.substr(slash);
  } else {
    return Status::invalid_argument(
        fmt::format("'{}': use ws://HOST:PORT/PATH or unix:/path/to.sock:/PATH", url));
  }
  auto target = parse_target(target_text);
  if (!target.ok()) return target.status();
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return Status::invalid_argument(fmt::format("'{}' is not a request path", path));
  }
  for (const auto& [name, value] : headers) {
    const bool bad_value = std::any_of(value.begin(), value.end(),
                                       [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
    if (name.empty() || bad_value || name.find_first_of(":\r\n \t") != std::string::npos)
      return Status::invalid_argument(fmt::format("'{}' is not a header field to send", name));
  }
  const std::string where = target->shown();
  auto dialed = dial(*target, ms_left(deadline), where);
  if (!dialed.ok()) return dialed.status();
  const int fd = *dialed;
  struct Closer {
    int fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{fd};  // until the Socket owns it

  unsigned char raw[16];
  random_bytes(raw, sizeof(raw));
  const std::string key = base64(raw, sizeof(raw));
  std::string host = target->unix_socket ? "localhost"
                     : target->host.find(':') != std::string::npos
                         ? fmt::format("[{}]:{}", target->host, target->port)
                         : fmt::format("{}:{}", target->host, target->port);
  std::string req = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
      path, host, key);
  for (const auto& [name, value] : headers) req += fmt::format("{}: {}\r\n", name, value);
  req += "\r\n";
  const auto with_where = [&](const Status& s) {
    return Status(s.code(), fmt::format("WebSocket {}{}: {}", where, path, s.message()));
  };
  if (Status s = send_all(fd, req, deadline); !s.ok()) return with_where(s);
  std::string head, rest;
  if (Status s = read_head(fd, deadline, head, rest); !s.ok()) return with_where(s);

  // The status line and the fields.
  const size_t eol = head.find("\r\n");
  const std::string status_line = head.substr(0, eol);
  int status = 0;
  if (status_line.rfind("HTTP/1.1 ", 0) != 0 && status_line.rfind("HTTP/1.0 ", 0) != 0)
    return with_where(Status::internal("the reply is not HTTP"));
  if (status_line.size() < 12 || !std::isdigit(static_cast<unsigned char>(status_line[9])) ||
      !std::isdigit(static_cast<unsigned char>(status_line[10])) ||
      !std::isdigit(static_cast<unsigned char>(status_line[11])))
    return with_where(Status::internal("a malformed status line"));
  status = std::stoi(status_line.substr(9, 3));
  std::multimap<std::string, std::string> fields;
  for (size_t at = eol + 2; at < head.size();) {
    const size_t end = head.find("\r\n", at);
    const std::string line = head.substr(at, end - at);
    at = end + 2;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    fields.emplace(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }
  const auto field = [&](const std::string& name) {
    auto it = fields.find(name);
    return it == fields.end() ? std::string() : it->second;
  };
  if (status != 101) {
    // A refusal: its body (by Content-Length, capped) says why.
    Reply reply;
    reply.status = status;
    reply.content_type = field("content-type");
    size_t want = 0;
    const std::string cl = field("content-length");
    if (!cl.empty() && cl.size() < 10 && cl.find_first_not_of("0123456789") == std::string::npos)
      want = std::min<size_t>(std::stoul(cl), kMaxErrorBody);
    reply.body = rest.substr(0, want);
    while (reply.body.size() < want && Clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, ms_left(deadline)) <= 0) continue;
      char chunk[4096];
      const ssize_t n =
          ::recv(fd, chunk, std::min(sizeof(chunk), want - reply.body.size()), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
      if (n > 0) reply.body.append(chunk, static_cast<size_t>(n));
    }
    return with_where(reply_error(reply));
  }
  if (!has_token(field("upgrade"), "websocket") || !has_token(field("connection"), "upgrade"))
    return with_where(Status::internal("the 101 reply does not upgrade to websocket"));
  if (field("sec-websocket-accept") != accept_key(key))
    return with_where(Status::internal("the 101 reply's Sec-WebSocket-Accept is wrong"));
  closer.fd = -1;
  return Socket(fd, Role::kClient, max_message, std::move(rest));
}

}  // namespace nimbus::http::ws
