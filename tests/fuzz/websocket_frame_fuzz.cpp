// Fuzzes the WebSocket frame reader (common/websocket.h): the bytes a hostile peer sends
// after the handshake, read by a Socket until it fails or the input ends. A Socket must never
// crash, hang or allocate past its message limit, and every message it returns must obey
// the protocol (text is UTF-8, sizes within the limit).
//
// Input: byte 0 picks the options: bit 0 the Socket's role (server: the peer's frames must be
// masked; client: unmasked), bits 1-3 the message limit (64 << N bytes: 64 B to 8 KiB, so
// 1009 is reached). The rest is what the peer sends, then the peer shuts its side.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/websocket.h"

namespace ws = nimbus::http::ws;

namespace {

// Reads what the Socket sent back (pongs, its Close), so its writes never fill the buffer.
void drain(int fd) {
  char buf[16384];
  while (::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
}

bool valid_utf8(const std::string& s) {  // a second, simple opinion
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; k++) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // What fits a socketpair's buffer at once (the Socket reads only after it is written).
  if (size < 1 || size > 64 * 1024) return 0;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  const bool server = (data[0] & 1) == 0;
  const size_t max_message = size_t{64} << ((data[0] >> 1) % 8);
  ws::Socket sock(sv[0], server ? ws::Role::kServer : ws::Role::kClient, max_message);
  sock.set_frame_timeout_ms(1000);  // never reached: the peer's end is shut below
  sock.set_write_timeout_ms(100);
  size_t sent = 0;
  while (sent < size - 1) {
    const ssize_t n = ::send(sv[1], data + 1 + sent, size - 1 - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(sv[1], SHUT_WR);
  for (int i = 0; i < 100000; i++) {
    auto m = sock.read();
    drain(sv[1]);
    if (!m.ok()) break;
    if (m->kind != ws::Message::kClose && m->data.size() > max_message) std::abort();
    if (m->kind == ws::Message::kText && !valid_utf8(m->data)) std::abort();
    if (m->kind == ws::Message::kClose) {
      if (sock.read().ok()) std::abort();  // nothing after a Close
      break;
    }
  }
  ::close(sv[1]);
  return 0;
}
