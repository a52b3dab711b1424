// Exercises the real libslirp with hand-made frames playing the guest. Only loopback
// sockets are used.
#include "backends/net/slirp_backend.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

namespace nimbus::backends {
namespace {

using Frame = std::vector<uint8_t>;

constexpr uint8_t kGuestMac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr uint32_t kGuestIp = 0x0a00020f;    // 10.0.2.15
constexpr uint32_t kGatewayIp = 0x0a000202;  // 10.0.2.2

// Frames the backend hands to the "guest", collected for the test thread.
class FrameSink {
 public:
  bool receive(const uint8_t* frame, size_t len) {
    std::lock_guard lock(mu_);
    if (!accepting_) return false;
    frames_.emplace_back(frame, frame + len);
    cv_.notify_all();
    return true;
  }
  void set_accepting(bool accepting) {
    std::lock_guard lock(mu_);
    accepting_ = accepting;
  }
  // Waits up to `timeout` for a frame matching `match`.
  bool wait_for(const std::function<bool(const Frame&)>& match, Frame* found = nullptr,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(1500)) {
    std::unique_lock lock(mu_);
    size_t seen = 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      for (; seen < frames_.size(); ++seen) {
        if (match(frames_[seen])) {
          if (found != nullptr) *found = frames_[seen];
          return true;
        }
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && seen == frames_.size()) {
        return false;
      }
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Frame> frames_;
  bool accepting_ = true;
};

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

uint16_t ip_checksum(const uint8_t* p, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += be16(p + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

Frame arp_request(uint32_t target_ip) {
  Frame f(60, 0);
  std::fill(f.begin(), f.begin() + 6, 0xff);
  std::copy(kGuestMac, kGuestMac + 6, f.begin() + 6);
  put16(&f[12], 0x0806);
  put16(&f[14], 1);       // Ethernet
  put16(&f[16], 0x0800);  // IPv4
  f[18] = 6;
  f[19] = 4;
  put16(&f[20], 1);  // request
  std::copy(kGuestMac, kGuestMac + 6, f.begin() + 22);
  put32(&f[28], kGuestIp);
  put32(&f[38], target_ip);
  return f;
}

bool is_arp_reply_from(const Frame& f, uint32_t ip) {
  return f.size() >= 42 && be16(&f[12]) == 0x0806 && be16(&f[20]) == 2 && be32(&f[28]) == ip &&
         std::equal(kGuestMac, kGuestMac + 6, f.begin()) && be32(&f[38]) == kGuestIp;
}

Frame dhcp_discover() {
  constexpr size_t kBootp = 236 + 312;  // fixed fields + a full options area
  Frame f(14 + 20 + 8 + kBootp, 0);
  std::fill(f.begin(), f.begin() + 6, 0xff);
  std::copy(kGuestMac, kGuestMac + 6, f.begin() + 6);
  put16(&f[12], 0x0800);
  uint8_t* ip = &f[14];
  ip[0] = 0x45;
  put16(ip + 2, static_cast<uint16_t>(20 + 8 + kBootp));
  ip[8] = 64;
  ip[9] = 17;  // UDP
  put32(ip + 12, 0);
  put32(ip + 16, 0xffffffff);
  put16(ip + 10, ip_checksum(ip, 20));
  uint8_t* udp = ip + 20;
  put16(udp, 68);
  put16(udp + 2, 67);
  put16(udp + 4, static_cast<uint16_t>(8 + kBootp));  // checksum 0: none (RFC 768)
  uint8_t* bootp = udp + 8;
  bootp[0] = 1;  // BOOTREQUEST
  bootp[1] = 1;
  bootp[2] = 6;
  put32(bootp + 4, 0x12345678);  // xid
  std::copy(kGuestMac, kGuestMac + 6, bootp + 28);
  put32(bootp + 236, 0x63825363);  // magic cookie
  bootp[240] = 53;                 // DHCP message type
  bootp[241] = 1;
  bootp[242] = 1;  // DISCOVER
  bootp[243] = 255;
  return f;
}

// The IPv4 header of an Ethernet/IPv4 frame carrying `proto`, or null.
const uint8_t* ipv4_payload(const Frame& f, uint8_t proto, const uint8_t** ip_out) {
  if (f.size() < 34 || be16(&f[12]) != 0x0800 || (f[14] >> 4) != 4 || f[23] != proto) {
    return nullptr;
  }
  size_t ihl = (f[14] & 0xf) * 4u;
  if (f.size() < 14 + ihl + 8) return nullptr;
  *ip_out = &f[14];
  return &f[14 + ihl];
}

bool is_dhcp_offer(const Frame& f) {
  const uint8_t* ip;
  const uint8_t* udp = ipv4_payload(f, 17, &ip);
  if (udp == nullptr || be16(udp) != 67 || be16(udp + 2) != 68) return false;
  const uint8_t* bootp = udp + 8;
  size_t avail = f.size() - static_cast<size_t>(bootp - f.data());
  if (avail < 244 || bootp[0] != 2 || be32(bootp + 4) != 0x12345678) return false;
  if (be32(bootp + 16) != kGuestIp || be32(bootp + 236) != 0x63825363) return false;
  for (size_t i = 240; i + 2 < avail && bootp[i] != 255;) {
    if (bootp[i] == 0) {
      ++i;
      continue;
    }
    if (bootp[i] == 53) return bootp[i + 2] == 2;  // OFFER
    i += 2 + bootp[i + 1];
  }
  return false;
}

uint16_t free_port(int type) {
  int s = socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

struct Started {
  // The sink outlives the backend (members are destroyed in reverse): its thread may still
  // hand frames (ARP for a connection through a forward) until it is stopped.
  std::unique_ptr<FrameSink> sink = std::make_unique<FrameSink>();
  std::unique_ptr<SlirpBackend> backend;
};

Started start_backend(const UserNetOptions& options) {
  Started s;
  auto created = SlirpBackend::create(options);
  EXPECT_TRUE(created.ok()) << created.message();
  if (!created.ok()) return s;
  s.backend = std::move(*created);
  FrameSink* sink = s.sink.get();
  Status st = s.backend->start([sink](const uint8_t* f, size_t n) { return sink->receive(f, n); });
  EXPECT_TRUE(st.ok());
  return s;
}

// Teaches slirp the guest's MAC, as a booting guest would.
void introduce_guest(Started& s) {
  Frame req = arp_request(kGatewayIp);
  s.backend->send(req.data(), req.size());
  ASSERT_TRUE(s.sink->wait_for([](const Frame& f) { return is_arp_reply_from(f, kGatewayIp); }));
}

TEST(SlirpBackendTest, AnswersArpForTheGateway) {
  Started s = start_backend(UserNetOptions{});
  ASSERT_NE(s.backend, nullptr);
  Frame req = arp_request(kGatewayIp);
  s.backend->send(req.data(), req.size());
  Frame reply;
  ASSERT_TRUE(
      s.sink->wait_for([](const Frame& f) { return is_arp_reply_from(f, kGatewayIp); }, &reply));
  s.backend->stop();
}

TEST(SlirpBackendTest, DhcpOffersTheFirstAddress) {
  Started s = start_backend(UserNetOptions{});
  ASSERT_NE(s.backend, nullptr);
  Frame discover = dhcp_discover();
  s.backend->send(discover.data(), discover.size());
  EXPECT_TRUE(s.sink->wait_for(is_dhcp_offer));
}

TEST(SlirpBackendTest, QueuedFramesArriveAfterResume) {
  Started s = start_backend(UserNetOptions{});
  ASSERT_NE(s.backend, nullptr);
  s.sink->set_accepting(false);
  Frame req = arp_request(kGatewayIp);
  s.backend->send(req.data(), req.size());
  auto is_reply = [](const Frame& f) { return is_arp_reply_from(f, kGatewayIp); };
  EXPECT_FALSE(s.sink->wait_for(is_reply, nullptr, std::chrono::milliseconds(200)));
  s.sink->set_accepting(true);
  s.backend->resume_receive();
  EXPECT_TRUE(s.sink->wait_for(is_reply));
}

TEST(SlirpBackendTest, TcpHostForwardOpensAConnectionToTheGuest) {
  UserNetOptions options;
  uint16_t port = free_port(SOCK_STREAM);
  options.forwards.push_back({"tcp", "127.0.0.1", port, config::format_ipv4(kGuestIp), 2222});
  Started s = start_backend(options);
  ASSERT_NE(s.backend, nullptr);
  introduce_guest(s);

  int c = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);

  EXPECT_TRUE(s.sink->wait_for([](const Frame& f) {
    const uint8_t* ip;
    const uint8_t* tcp = ipv4_payload(f, 6, &ip);
    if (tcp == nullptr || be32(ip + 16) != kGuestIp) return false;
    uint8_t flags = tcp[13];
    return std::equal(kGuestMac, kGuestMac + 6, f.begin()) && be16(tcp + 2) == 2222 &&
           (flags & 0x02) && !(flags & 0x10);  // SYN without ACK
  }));
  close(c);
}

TEST(SlirpBackendTest, UdpHostForwardDeliversToTheGuest) {
  UserNetOptions options;
  uint16_t port = free_port(SOCK_DGRAM);
  options.forwards.push_back({"udp", "127.0.0.1", port, config::format_ipv4(kGuestIp), 5353});
  Started s = start_backend(options);
  ASSERT_NE(s.backend, nullptr);
  introduce_guest(s);

  int c = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const char payload[] = "nimbus";
  ASSERT_EQ(sendto(c, payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&a), sizeof a),
            static_cast<ssize_t>(sizeof payload));
  EXPECT_TRUE(s.sink->wait_for([&](const Frame& f) {
    const uint8_t* ip;
    const uint8_t* udp = ipv4_payload(f, 17, &ip);
    return udp != nullptr && be32(ip + 16) == kGuestIp && be16(udp + 2) == 5353 &&
           be16(udp + 4) == 8 + sizeof payload &&
           std::equal(payload, payload + sizeof payload, udp + 8);
  }));
  close(c);
}

TEST(SlirpBackendTest, PortInUseIsAClearError) {
  int busy = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(busy, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(busy, 1), 0);
  socklen_t len = sizeof a;
  getsockname(busy, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);

  UserNetOptions options;
  options.forwards.push_back({"tcp", "127.0.0.1", port, config::format_ipv4(kGuestIp), 80});
  auto created = SlirpBackend::create(options);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.message(),
            "hostfwd tcp 127.0.0.1:" + std::to_string(port) + ": address already in use");
  close(busy);
}

// Whether a TCP connection to 127.0.0.1:port is accepted (slirp's listener is there) or
// refused.
bool accepts(uint16_t port) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(c);
  return ok;
}

config::PortForward tcp_forward(uint16_t host_port, uint16_t guest_port) {
  return {"tcp", "127.0.0.1", host_port, "", guest_port};
}

// A SYN to the guest's `port`: a connection through a forward reached the guest side.
bool is_syn_to(const Frame& f, uint16_t port) {
  const uint8_t* ip;
  const uint8_t* tcp = ipv4_payload(f, 6, &ip);
  return tcp != nullptr && be32(ip + 16) == kGuestIp && be16(tcp + 2) == port && (tcp[13] & 0x02) &&
         !(tcp[13] & 0x10);
}

TEST(SlirpBackendTest, SetForwardsWhileRunningAddsAndRemovesListeners) {
  const uint16_t a = free_port(SOCK_STREAM);
  uint16_t b = free_port(SOCK_STREAM);
  while (b == a) b = free_port(SOCK_STREAM);
  UserNetOptions options;
  options.forwards = {tcp_forward(a, 80)};
  Started s = start_backend(options);
  ASSERT_NE(s.backend, nullptr);
  ASSERT_TRUE(accepts(a));
  ASSERT_FALSE(accepts(b));

  ASSERT_TRUE(s.backend->set_forwards({tcp_forward(a, 80), tcp_forward(b, 81)}).ok());
  EXPECT_TRUE(accepts(a));
  EXPECT_TRUE(accepts(b));
  ASSERT_TRUE(s.backend->set_forwards({tcp_forward(b, 81)}).ok());
  EXPECT_FALSE(accepts(a));
  EXPECT_TRUE(accepts(b));
  EXPECT_EQ(s.backend->forwards(), std::vector<config::PortForward>{tcp_forward(b, 81)});
  ASSERT_TRUE(s.backend->set_forwards({}).ok());
  EXPECT_FALSE(accepts(b));
  EXPECT_TRUE(s.backend->forwards().empty());
  // And back: the port is free again for a new listener.
  ASSERT_TRUE(s.backend->set_forwards({tcp_forward(a, 80)}).ok());
  EXPECT_TRUE(accepts(a));
}

TEST(SlirpBackendTest, SetForwardsRetargetsTheGuestPort) {
  const uint16_t port = free_port(SOCK_STREAM);
  UserNetOptions options;
  options.forwards = {tcp_forward(port, 2222)};
  Started s = start_backend(options);
  ASSERT_NE(s.backend, nullptr);
  introduce_guest(s);
  ASSERT_TRUE(s.backend->set_forwards({tcp_forward(port, 2223)}).ok());
  int c = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
  EXPECT_TRUE(s.sink->wait_for([](const Frame& f) { return is_syn_to(f, 2223); }));
  close(c);
}

TEST(SlirpBackendTest, SetForwardsIsAllOrNothing) {
  int busy = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(busy, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t taken = ntohs(addr.sin_port);
  const uint16_t kept = free_port(SOCK_STREAM);
  uint16_t fresh = free_port(SOCK_STREAM);
  while (fresh == kept) fresh = free_port(SOCK_STREAM);

  UserNetOptions options;
  options.forwards = {tcp_forward(kept, 80)};
  Started s = start_backend(options);
  ASSERT_NE(s.backend, nullptr);
  // kept is dropped, fresh added, then taken fails: all of it is undone.
  Status st = s.backend->set_forwards({tcp_forward(fresh, 81), tcp_forward(taken, 82)});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "hostfwd tcp 127.0.0.1:" + std::to_string(taken) + ": address already in use");
  EXPECT_TRUE(accepts(kept));
  EXPECT_FALSE(accepts(fresh));
  EXPECT_EQ(s.backend->forwards(), std::vector<config::PortForward>{tcp_forward(kept, 80)});

  // An address that is not this host's: the same.
  st = s.backend->set_forwards({{"tcp", "192.0.2.1", fresh, "", 80}});
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("hostfwd tcp 192.0.2.1:"), std::string::npos) << st.message();
  EXPECT_TRUE(accepts(kept));
  close(busy);
}

TEST(SlirpBackendTest, SetForwardsChecksTheSetLikeTheConfiguration) {
  const uint16_t port = free_port(SOCK_STREAM);
  UserNetOptions options;
  options.forwards = {tcp_forward(port, 80)};
  Started s = start_backend(options);
  ASSERT_NE(s.backend, nullptr);
  const uint16_t other = free_port(SOCK_STREAM);
  for (const auto& [set, error] :
       std::vector<std::pair<std::vector<config::PortForward>, std::string>>{
           {{tcp_forward(other, 80), tcp_forward(other, 81)}, "forwarded twice"},
           {{{"tcp", "", other, "10.0.3.15", 80}}, "outside the user network 10.0.2.0/24"},
           {{{"sctp", "", other, "", 80}}, "unknown protocol"},
           {{{"tcp", "", 0, "", 80}}, "bad port"},
       }) {
    Status st = s.backend->set_forwards(set);
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << error;
    EXPECT_NE(st.message().find(error), std::string::npos) << st.message();
    EXPECT_TRUE(accepts(port));
    EXPECT_FALSE(accepts(other));
  }
}

TEST(SlirpBackendTest, SetForwardsBeforeStartAndAfterStop) {
  const uint16_t port = free_port(SOCK_STREAM);
  FrameSink sink;  // outlives the backend
  auto created = SlirpBackend::create(UserNetOptions{});
  ASSERT_TRUE(created.ok());
  ASSERT_TRUE((*created)->set_forwards({tcp_forward(port, 80)}).ok());
  EXPECT_TRUE(accepts(port));
  ASSERT_TRUE(
      (*created)->start([&](const uint8_t* f, size_t n) { return sink.receive(f, n); }).ok());
  EXPECT_EQ((*created)->forwards(), std::vector<config::PortForward>{tcp_forward(port, 80)});
  (*created)->stop();
  ASSERT_TRUE((*created)->set_forwards({}).ok());
  EXPECT_FALSE(accepts(port));
}

TEST(SlirpBackendTest, GarbageFromTheGuestIsHarmless) {
  Started s = start_backend(UserNetOptions{});
  ASSERT_NE(s.backend, nullptr);
  Frame junk(100, 0xa5);
  put16(&junk[12], 0x0800);
  s.backend->send(junk.data(), junk.size());
  s.backend->send(junk.data(), 3);  // shorter than an Ethernet header
  put16(&junk[12], 0x0806);
  s.backend->send(junk.data(), 20);
  // Still alive and answering.
  introduce_guest(s);
}

}  // namespace
}  // namespace nimbus::backends
