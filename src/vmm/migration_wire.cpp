#include "vmm/migration_wire.h"

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
#include <zstd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace nimbus::vmm::migration {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

void put_u32(std::vector<uint8_t>& v, uint32_t x) {
  for (int i = 0; i < 4; i++) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& v, uint64_t x) {
  for (int i = 0; i < 8; i++) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
}

// Reads little-endian fields from a payload, failing (not throwing) past its end.
class Cursor {
 public:
  explicit Cursor(const std::vector<uint8_t>& v) : v_(v) {}
  // A little-endian unsigned integer of sizeof(T) bytes; false past the end.
  template <typename T>
  bool take(T& x) {
    if (at_ + sizeof(T) > v_.size()) return false;
    x = 0;
    for (size_t i = 0; i < sizeof(T); i++)
      x |= static_cast<T>(static_cast<T>(v_[at_ + i]) << (8 * i));
    at_ += sizeof(T);
    return true;
  }
  bool u8(uint8_t& x) { return take(x); }
  bool u32(uint32_t& x) { return take(x); }
  bool u64(uint64_t& x) { return take(x); }
  const uint8_t* rest() const { return v_.data() + at_; }
  size_t rest_size() const { return v_.size() - at_; }

 private:
  const std::vector<uint8_t>& v_;
  size_t at_ = 0;
};

void append_compressed(std::vector<uint8_t>& out, const uint8_t* data, size_t len, bool compress) {
  if (compress) {
    const size_t bound = ZSTD_compressBound(len);
    const size_t start = out.size() + 1;
    out.resize(start + bound);
    const size_t n = ZSTD_compress(out.data() + start, bound, data, len, 1);
    if (!ZSTD_isError(n) && n < len) {
      out[start - 1] = static_cast<uint8_t>(Codec::kZstd);
      out.resize(start + n);
      return;
    }
    out.resize(start - 1);  // incompressible: sent as it is
  }
  out.push_back(static_cast<uint8_t>(Codec::kRaw));
  out.insert(out.end(), data, data + len);
}

// The bytes after a codec byte, decompressed to exactly `len` bytes.
Status take_data(Cursor& c, size_t len, std::vector<uint8_t>& out) {
  uint8_t codec = 0;
  if (!c.u8(codec)) return Status::error("truncated record: no codec");
  out.resize(len);
  switch (static_cast<Codec>(codec)) {
    case Codec::kRaw:
      if (c.rest_size() != len)
        return Status::error(fmt::format("raw data of {} bytes, expected {}", c.rest_size(), len));
      std::memcpy(out.data(), c.rest(), len);
      return Status();
    case Codec::kZstd: {
      const unsigned long long size = ZSTD_getFrameContentSize(c.rest(), c.rest_size());
      if (size != len) return Status::error("a zstd frame whose size is not the record's");
      const size_t n = ZSTD_decompress(out.data(), len, c.rest(), c.rest_size());
      if (ZSTD_isError(n) || n != len) return Status::error("a zstd frame that does not decode");
      return Status();
    }
    case Codec::kZeros:
      if (c.rest_size() != 0) return Status::error("zero data with bytes after it");
      std::fill(out.begin(), out.end(), 0);
      return Status();
  }
  return Status::error(fmt::format("unknown codec {}", codec));
}

Status io_error(const char* what) {
  return Status::error(fmt::format("{}: {}", what, std::strerror(errno)));
}

}  // namespace

std::string Address::to_string() const {
  return unix_socket ? "unix:" + path : fmt::format("tcp:{}:{}", host, port);
}

Result<Address> parse_address(const std::string& text) {
  Address a;
  if (text.rfind("unix:", 0) == 0) {
    a.unix_socket = true;
    a.path = text.substr(5);
    if (a.path.empty() || a.path.size() >= sizeof(sockaddr_un::sun_path))
      return Status::invalid_argument(
          fmt::format("'{}': a unix socket path must be 1-107 bytes", text));
    return a;
  }
  if (text.rfind("tcp:", 0) != 0)
    return Status::invalid_argument(
        fmt::format("'{}': an address is tcp:HOST:PORT or unix:PATH", text));
  const std::string rest = text.substr(4);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status::invalid_argument(
        fmt::format("'{}': tcp:HOST:PORT wants a host and a port", text));
  a.host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535)
    return Status::invalid_argument(fmt::format("'{}': the port must be 0-65535", text));
  a.port = static_cast<uint16_t>(std::stoul(port));
  return a;
}

Channel::~Channel() {
  if (fd_ >= 0) ::close(fd_);
}

void Channel::shutdown() { ::shutdown(fd_, SHUT_RDWR); }

Status Channel::write_all(const void* data, size_t len, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    const ssize_t n = ::send(fd_, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
      sent_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return io_error("send");
    pollfd pfd{fd_, POLLOUT, 0};
    const int r = ::poll(&pfd, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return io_error("poll");
    if (r == 0) return Status::error("the peer stopped reading (timed out)");
    if ((pfd.revents & (POLLERR | POLLHUP)) != 0 && (pfd.revents & POLLOUT) == 0)
      return Status::error("the connection was closed");
  }
  return Status();
}

Status Channel::read_exact(void* data, size_t len, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto* p = static_cast<uint8_t*>(data);
  while (len > 0) {
    const ssize_t n = ::recv(fd_, p, len, MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
      received_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) return Status::error("the connection was closed");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return io_error("recv");
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return io_error("poll");
    if (r == 0) return Status::error("the peer went silent (timed out)");
  }
  return Status();
}

Status Channel::send(RecordType type, const void* payload, size_t len, int timeout_ms) {
  if (len > kMaxPayload) return Status::internal("a migration record over the size limit");
  uint8_t head[8] = {static_cast<uint8_t>(type), 0, 0, 0};
  for (int i = 0; i < 4; i++) head[4 + i] = static_cast<uint8_t>(len >> (8 * i));
  if (Status s = write_all(head, sizeof head, timeout_ms); !s.ok()) return s;
  return write_all(payload, len, timeout_ms);
}

Result<Record> Channel::receive(int timeout_ms) {
  uint8_t head[8];
  if (Status s = read_exact(head, sizeof head, timeout_ms); !s.ok()) return s;
  if (head[1] != 0 || head[2] != 0 || head[3] != 0)
    return Status::error("a malformed record header");
  uint32_t len = 0;
  for (int i = 0; i < 4; i++) len |= static_cast<uint32_t>(head[4 + i]) << (8 * i);
  if (len > kMaxPayload) return Status::error(fmt::format("a record of {} bytes is too big", len));
  Record r;
  r.type = static_cast<RecordType>(head[0]);
  r.payload.resize(len);
  if (Status s = read_exact(r.payload.data(), len, timeout_ms); !s.ok()) return s;
  return r;
}

Result<Record> Channel::poll_record(int timeout_ms) {
  pollfd pfd{fd_, POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) <= 0) return Status::error("nothing to read");
  return receive(timeout_ms);
}

namespace {

Result<std::vector<sockaddr_storage>> resolve(const Address& a, socklen_t& len_out) {
  std::vector<sockaddr_storage> out;
  if (a.unix_socket) {
    sockaddr_storage ss{};
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, a.path.c_str(), a.path.size() + 1);
    out.push_back(ss);
    len_out = sizeof(sockaddr_un);
    return out;
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(a.host.c_str(), std::to_string(a.port).c_str(), &hints, &res);
  if (rc != 0)
    return Status::invalid_argument(fmt::format("'{}': {}", a.to_string(), gai_strerror(rc)));
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, p->ai_addr, p->ai_addrlen);
    out.push_back(ss);
    len_out = p->ai_addrlen;
  }
  ::freeaddrinfo(res);
  if (out.empty()) return Status::invalid_argument(fmt::format("'{}': no address", a.to_string()));
  return out;
}

void tune(int fd, bool unix_socket) {
  if (unix_socket) return;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

Result<std::unique_ptr<Channel>> connect_to(const Address& address, int timeout_ms) {
  socklen_t len = 0;
  auto addrs = resolve(address, len);
  if (!addrs.ok()) return addrs.status();
  const sockaddr_storage& ss = addrs->front();
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return io_error("socket");
  auto channel = std::make_unique<Channel>(fd);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN)
      return Status::error(
          fmt::format("connect to {}: {}", address.to_string(), std::strerror(errno)));
    pollfd pfd{fd, POLLOUT, 0};
    const int r = ::poll(&pfd, 1, timeout_ms);
    if (r <= 0) return Status::error(fmt::format("connect to {}: timed out", address.to_string()));
    int err = 0;
    socklen_t elen = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0)
      return Status::error(
          fmt::format("connect to {}: {}", address.to_string(), std::strerror(err)));
  }
  tune(fd, address.unix_socket);
  return channel;
}

Result<Listener> listen_on(const Address& address) {
  socklen_t len = 0;
  auto addrs = resolve(address, len);
  if (!addrs.ok()) return addrs.status();
  const sockaddr_storage& ss = addrs->front();
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return io_error("socket");
  int one = 1;
  if (!address.unix_socket) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.unix_socket) ::unlink(address.path.c_str());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0 || ::listen(fd, 1) != 0) {
    const int e = errno;
    ::close(fd);
    return Status::invalid_argument(
        fmt::format("listen on {}: {}", address.to_string(), std::strerror(e)));
  }
  Listener l{fd, address};
  if (!address.unix_socket) {
    sockaddr_in in{};
    socklen_t ilen = sizeof in;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&in), &ilen) == 0)
      l.bound.port = ntohs(in.sin_port);
    char text[INET_ADDRSTRLEN] = {};
    if (::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text) != nullptr) l.bound.host = text;
  }
  return l;
}

Result<std::unique_ptr<Channel>> accept_one(int listener_fd, int timeout_ms) {
  for (;;) {
    pollfd pfd{listener_fd, POLLIN, 0};
    const int r = ::poll(&pfd, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return io_error("poll");
    if (r == 0) return Status::error("no source connected in time");
    if ((pfd.revents & POLLIN) == 0) return Status::error("the listener was closed");
    const int fd = ::accept4(listener_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      return io_error("accept");
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    tune(fd, ss.ss_family == AF_UNIX);
    return std::make_unique<Channel>(fd);
  }
}

std::vector<uint8_t> encode_pages(const std::vector<uint64_t>& indexes, const uint8_t* ram,
                                  bool compress) {
  std::vector<uint8_t> out;
  put_u32(out, static_cast<uint32_t>(indexes.size()));
  for (uint64_t i : indexes) put_u64(out, i);
  std::vector<uint8_t> data(indexes.size() * kPageSize);
  for (size_t k = 0; k < indexes.size(); k++)
    std::memcpy(data.data() + k * kPageSize, ram + indexes[k] * kPageSize, kPageSize);
  append_compressed(out, data.data(), data.size(), compress);
  return out;
}

std::vector<uint8_t> encode_zero_pages(const std::vector<uint64_t>& indexes) {
  std::vector<uint8_t> out;
  put_u32(out, static_cast<uint32_t>(indexes.size()));
  for (uint64_t i : indexes) put_u64(out, i);
  return out;
}

std::vector<uint8_t> encode_disk(uint32_t disk, uint64_t offset, const uint8_t* data, uint32_t len,
                                 bool compress) {
  std::vector<uint8_t> out;
  put_u32(out, disk);
  put_u64(out, offset);
  put_u32(out, len);
  bool zeros = true;
  for (uint32_t i = 0; i < len && zeros; i++) zeros = data[i] == 0;
  if (zeros) {
    out.push_back(static_cast<uint8_t>(Codec::kZeros));
    return out;
  }
  append_compressed(out, data, len, compress);
  return out;
}

namespace {

Status take_indexes(Cursor& c, uint64_t ram_pages, uint32_t max, std::vector<uint64_t>& out) {
  uint32_t count = 0;
  if (!c.u32(count)) return Status::error("truncated record: no page count");
  if (count == 0 || count > max)
    return Status::error(fmt::format("a record of {} pages (1-{} allowed)", count, max));
  out.resize(count);
  for (uint32_t k = 0; k < count; k++) {
    if (!c.u64(out[k])) return Status::error("truncated record: page indexes");
    if (out[k] >= ram_pages)
      return Status::error(
          fmt::format("page {} is past the end of RAM ({} pages)", out[k], ram_pages));
  }
  return Status();
}

}  // namespace

Result<PagesRecord> parse_pages(const std::vector<uint8_t>& payload, uint64_t ram_pages) {
  Cursor c(payload);
  PagesRecord r;
  if (Status s = take_indexes(c, ram_pages, kMaxPagesPerRecord, r.indexes); !s.ok()) return s;
  if (Status s = take_data(c, r.indexes.size() * kPageSize, r.data); !s.ok())
    return Status::error("pages: " + s.message());
  return r;
}

Result<std::vector<uint64_t>> parse_zero_pages(const std::vector<uint8_t>& payload,
                                               uint64_t ram_pages) {
  Cursor c(payload);
  std::vector<uint64_t> out;
  if (Status s = take_indexes(c, ram_pages, 1u << 20, out); !s.ok()) return s;
  if (c.rest_size() != 0) return Status::error("zero pages: bytes after the indexes");
  return out;
}

Result<DiskRecord> parse_disk(const std::vector<uint8_t>& payload,
                              const std::vector<uint64_t>& disk_sizes) {
  Cursor c(payload);
  DiskRecord r;
  uint32_t len = 0;
  if (!c.u32(r.disk) || !c.u64(r.offset) || !c.u32(len))
    return Status::error("truncated disk record");
  if (r.disk >= disk_sizes.size())
    return Status::error(
        fmt::format("disk {} does not exist ({} disks)", r.disk, disk_sizes.size()));
  if (len == 0 || len > kMaxDiskBytesPerRecord)
    return Status::error(fmt::format("a disk record of {} bytes", len));
  if (r.offset > disk_sizes[r.disk] || len > disk_sizes[r.disk] - r.offset)
    return Status::error(fmt::format("disk {}: bytes {}+{} are past its end ({})", r.disk, r.offset,
                                     len, disk_sizes[r.disk]));
  if (Status s = take_data(c, len, r.data); !s.ok()) return Status::error("disk: " + s.message());
  return r;
}

}  // namespace nimbus::vmm::migration
