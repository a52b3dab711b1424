// WebSocket (RFC 6455) over Nimbus's HTTP server and client: the handshake on both sides,
// and a Socket that reads and writes messages, hardened against hostile peers.
//
// Server side: a handler of http::Server answers an upgrade request with accept(); the
// returned Reply (101 + Reply::upgrade, http_message.h) makes the server hand the
// connection over, on the connection's own thread, to `session`, which gets a Socket. When
// `session` returns, the Socket and the connection are closed. Bytes the server had read
// past the request head (a client may send frames right behind its request) are handed over
// with the fd and are the Socket's first input: none are lost.
//
// Client side: connect() opens ws://HOST:PORT/PATH or unix:/path/to.sock:/PATH.
//
// What a Socket enforces on input (a violation sends a Close frame with the code, then
// read() returns an error Status; the socket is then done):
//  - frames from a client are masked, frames from a server are not (1002);
//  - no reserved bits, known opcodes, control frames <= 125 bytes and never fragmented,
//    continuation frames only inside a fragmented message and never outside one (1002);
//  - a message (all its fragments) at most `max_message` bytes (1009), checked from the
//    frame header before the payload is read: a 2^63 length is refused at once;
//  - text messages and close reasons are valid UTF-8 (1007);
//  - a frame (header and payload) must arrive whole within frame_timeout_ms of its first
//    byte (default 30 s; total, so a trickle cannot stretch it): else the session ends
//    (kDeadlineExceeded). Waiting for the next frame has no limit: a console may be idle
//    for hours (use shutdown() from another thread, or send_ping, to end or probe it).
// Pings are answered with pongs by read() itself; pongs are dropped.
// Each send must be written whole within write_timeout_ms (default 30 s): a peer that never
// reads cannot block a sender forever; after a failed or timed-out send the socket is shut
// down (a partly written frame cannot be followed by another).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "common/status.h"

namespace nimbus::http::ws {

constexpr size_t kDefaultMaxMessage = 1024 * 1024;
constexpr int kDefaultFrameTimeoutMs = 30'000;
constexpr int kDefaultWriteTimeoutMs = 30'000;

// Close codes (RFC 6455 7.4.1).
constexpr uint16_t kCloseNormal = 1000;
constexpr uint16_t kCloseGoingAway = 1001;
constexpr uint16_t kCloseProtocolError = 1002;
constexpr uint16_t kCloseUnsupported = 1003;
constexpr uint16_t kCloseNoStatus = 1005;  // a Close frame without a code (never sent)
constexpr uint16_t kCloseInvalidData = 1007;
constexpr uint16_t kClosePolicy = 1008;
constexpr uint16_t kCloseTooBig = 1009;
constexpr uint16_t kCloseInternal = 1011;

struct Message {
  enum Kind { kText, kBinary, kClose } kind = kText;
  std::string data;         // the payload; for kClose, the reason
  uint16_t close_code = 0;  // kClose: the peer's code (kCloseNoStatus when it sent none)
};

enum class Role { kServer, kClient };

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455's GUID)).
std::string accept_key(std::string_view key);

class Socket {
 public:
  Socket();  // no connection: every call fails
  // Takes `fd` (a connected stream socket; closed by the destructor). `role` is this end's:
  // a kServer socket expects masked frames and sends unmasked ones. `already_read`: bytes
  // read from the fd before (they come before anything read from it now).
  Socket(int fd, Role role, size_t max_message = kDefaultMaxMessage, std::string already_read = {});
  ~Socket();
  Socket(Socket&&) noexcept;
  Socket& operator=(Socket&&) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // The next message (blocking). A kClose message is the peer's close: read() has already
  // answered it (the close handshake is done) and every later read fails. Errors:
  // kUnavailable (the peer left without a Close, or shutdown()), kInvalidArgument (a
  // protocol violation, see above; a Close was sent), kDeadlineExceeded (a frame stalled),
  // kConflict (a read after the close).
  // One thread reads at a time; sends may run concurrently with a read.
  Result<Message> read();

  // Thread-safe (one mutex orders whole frames). kUnavailable when the connection is gone,
  // kInvalidArgument for text that is not UTF-8 or a too-long close reason / ping payload.
  Status send_text(std::string_view text);
  Status send_binary(std::string_view data);
  // Sends a Close frame (once; later calls do nothing). `reason` at most 123 bytes.
  Status send_close(uint16_t code = kCloseNormal, std::string_view reason = {});
  Status send_ping(std::string_view payload = {});  // at most 125 bytes

  // Unblocks a read() (and a send) blocked in another thread: both fail from then on. Does
  // not close the fd (the destructor does), so it is safe to call while another thread uses it.
  void shutdown();

  int fd() const;
  bool valid() const { return impl_ != nullptr; }
  void set_frame_timeout_ms(int ms);
  void set_write_timeout_ms(int ms);
  void set_max_message(size_t bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Checks an upgrade request (GET, "Upgrade: websocket", "Connection" listing "upgrade",
// "Sec-WebSocket-Version: 13", a Sec-WebSocket-Key of 16 base64 bytes; kInvalidArgument with
// what is wrong, for a 400) and returns the 101 reply whose upgrade runs `session` with a
// kServer Socket of `max_message` on the connection's thread. The reply's `headers` may be
// added to (e.g. Sec-WebSocket-Protocol) before it is returned to the server.
Result<Reply> accept(const Request& req, std::function<void(Socket&)> session,
                     size_t max_message = kDefaultMaxMessage);

// Opens a WebSocket: `url` is ws://HOST[:PORT]/PATH (PORT 80 when left out) or
// unix:/path/to.sock:/PATH. Sends the handshake with a random key and `headers` (e.g.
// {"Authorization", "Bearer TOKEN"}), checks the 101 and its Sec-WebSocket-Accept, all
// within `timeout_ms`. A non-101 reply is an error from its status and body (as
// http::reply_error: 401 kPermissionDenied, 404 kNotFound, ...). The Socket is kClient
// (its frames are masked), with `max_message` as its limit.
Result<Socket> connect(const std::string& url,
                       const std::multimap<std::string, std::string>& headers = {},
                       int timeout_ms = 5000, size_t max_message = kDefaultMaxMessage);

}  // namespace nimbus::http::ws
