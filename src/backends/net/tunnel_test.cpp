#include "backends/net/tunnel.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

namespace nimbus::backends {
namespace {

using Frame = std::vector<uint8_t>;
using namespace std::chrono_literals;

class Sink {
 public:
  bool receive(const uint8_t* f, size_t n) {
    std::lock_guard lock(mu_);
    frames_.emplace_back(f, f + n);
    cv_.notify_all();
    return true;
  }
  std::vector<Frame> wait(size_t count, std::chrono::milliseconds timeout = 2000ms) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return frames_.size() >= count; });
    return frames_;
  }
  std::vector<Frame> take() {
    std::lock_guard lock(mu_);
    return std::exchange(frames_, {});
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Frame> frames_;
};

// 52:54:00:00:00:LAST (unicast) to 52:54:00:00:00:DST.
Frame frame_to(uint8_t dst, uint8_t src, size_t len, uint8_t fill) {
  Frame f(len, fill);
  const uint8_t base[6] = {0x52, 0x54, 0x00, 0, 0, 0};
  std::copy(base, base + 6, f.begin());
  std::copy(base, base + 6, f.begin() + 6);
  f[5] = dst;
  f[11] = src;
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

// The sender counts a datagram once sendmsg has returned, which can be after the receiver
// already has it: counters of the sending side are read with a deadline.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 2000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

Frame broadcast(uint8_t src, size_t len, uint8_t fill) {
  Frame f = frame_to(0, src, len, fill);
  std::fill(f.begin(), f.begin() + 6, 0xff);
  return f;
}

// A raw UDP socket on 127.0.0.1, to play a peer (or a stranger) by hand.
class Udp {
 public:
  Udp() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof addr_;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len);
  }
  ~Udp() { close(fd_); }
  std::string endpoint() const { return Tunnel::format_endpoint(addr_); }
  void send_to(const std::string& endpoint, const Frame& data) {
    auto to = Tunnel::parse_endpoint(endpoint);
    ASSERT_TRUE(to.ok());
    ASSERT_EQ(sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&*to),
                     sizeof *to),
              static_cast<ssize_t>(data.size()));
  }
  // The next datagram within `timeout`, or empty.
  Frame receive(std::chrono::milliseconds timeout = 1000ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return {};
    Frame buf(70000);
    ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return {};
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

 private:
  int fd_ = -1;
  sockaddr_in addr_{};
};

Frame encapsulate(uint32_t vni, const Frame& f) {
  Frame out(Tunnel::kHeaderSize);
  Tunnel::encode_header(vni, out.data());
  out.insert(out.end(), f.begin(), f.end());
  return out;
}

class TunnelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus-tunnel-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    a_ = make_tunnel();
    b_ = make_tunnel();
    ASSERT_TRUE(a_->add_network(100, dir_ + "/a/vni-100").ok());
    ASSERT_TRUE(b_->add_network(100, dir_ + "/b/vni-100").ok());
    vm_a_ = join(dir_ + "/a/vni-100", sink_a_);
    vm_b_ = join(dir_ + "/b/vni-100", sink_b_);
  }
  void TearDown() override {
    for (auto* p : {&vm_a_, &vm_b_}) (*p)->stop();
    a_.reset();
    b_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<Tunnel> make_tunnel() {
    auto t = Tunnel::create({"127.0.0.1:0", "", static_cast<gid_t>(-1)});
    EXPECT_TRUE(t.ok()) << t.message();
    EXPECT_TRUE((*t)->start().ok());
    return std::move(*t);
  }
  std::unique_ptr<SwitchBackend> join(const std::string& path, Sink& sink) {
    auto s = SwitchBackend::create(path);
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(
        (*s)->start([&sink](const uint8_t* f, size_t n) { return sink.receive(f, n); }).ok());
    return std::move(*s);
  }
  void link_ab() {
    ASSERT_TRUE(a_->set_peers({{"hb", b_->listen_endpoint()}}).ok());
    ASSERT_TRUE(b_->set_peers({{"ha", a_->listen_endpoint()}}).ok());
  }

  std::string dir_;
  std::unique_ptr<Tunnel> a_, b_;
  Sink sink_a_, sink_b_;
  std::unique_ptr<SwitchBackend> vm_a_, vm_b_;
};

TEST(TunnelHeader, EncodesAndDecodesRfc7348) {
  uint8_t h[Tunnel::kHeaderSize];
  Tunnel::encode_header(0x123456, h);
  const uint8_t want[8] = {0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0};
  EXPECT_EQ(0, memcmp(h, want, 8));
  EXPECT_EQ(Tunnel::decode_header(h, 8), 0x123456u);
  EXPECT_FALSE(Tunnel::decode_header(h, 7));  // short
  h[0] = 0x00;
  EXPECT_FALSE(Tunnel::decode_header(h, 8));  // no I flag
  h[0] = 0x0c;                                // reserved bits are ignored on receipt
  h[7] = 0xff;
  EXPECT_EQ(Tunnel::decode_header(h, 8), 0x123456u);
}

TEST(TunnelEndpoint, ParsesIpv4AndPortOnly) {
  auto e = Tunnel::parse_endpoint("192.0.2.10:4789");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(Tunnel::format_endpoint(*e), "192.0.2.10:4789");
  for (const char* bad : {"", ":", "192.0.2.10", "192.0.2.10:", ":4789", "192.0.2.10:0",
                          "192.0.2.10:65536", "192.0.2.10:04789", "192.0.2:4789", "host:4789",
                          "[::1]:4789", "192.0.2.10:47 89", "192.0.2.10:-1", "192.0.2.10:123456"}) {
    EXPECT_FALSE(Tunnel::parse_endpoint(bad).ok()) << bad;
  }
  EXPECT_TRUE(Tunnel::parse_endpoint("127.0.0.1:0", true).ok());
}

TEST(TunnelCreate, RefusesBadAddresses) {
  EXPECT_FALSE(Tunnel::create({"nowhere", "", static_cast<gid_t>(-1)}).ok());
  EXPECT_FALSE(Tunnel::create({"0.0.0.0:0", "", static_cast<gid_t>(-1)}).ok());  // needs advertise
  EXPECT_FALSE(Tunnel::create({"127.0.0.1:0", "0.0.0.0:4789", static_cast<gid_t>(-1)}).ok());
  auto t = Tunnel::create({"0.0.0.0:0", "192.0.2.1:4789", static_cast<gid_t>(-1)});
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ((*t)->advertised_endpoint(), "192.0.2.1:4789");
  // The port is taken now.
  auto taken = Tunnel::create({(*t)->listen_endpoint(), "192.0.2.1:4789", static_cast<gid_t>(-1)});
  EXPECT_FALSE(taken.ok());
}

TEST_F(TunnelTest, BroadcastCrossesAndUnicastFollowsLearning) {
  link_ab();
  const Frame hello = broadcast(0x0a, 60, 0x11);
  vm_a_->send(hello.data(), hello.size());
  auto got = sink_b_.wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], hello);
  EXPECT_TRUE(eventually([&] { return a_->stats().tx_packets == 1; })) << a_->stats().tx_packets;
  EXPECT_EQ(b_->stats().rx_packets, 1u);
  EXPECT_EQ(b_->stats().rx_bytes, hello.size() + Tunnel::kHeaderSize);
  // B answers a's MAC by unicast: B learned it from A, a's VM gets it.
  const Frame reply = frame_to(0x0a, 0x0b, 1514, 0x22);
  vm_b_->send(reply.data(), reply.size());
  got = sink_a_.wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], reply);
  sink_b_.take();
  // And back, unicast to b's MAC.
  const Frame data = frame_to(0x0b, 0x0a, 1000, 0x33);
  vm_a_->send(data.data(), data.size());
  got = sink_b_.wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], data);
}

TEST_F(TunnelTest, UnknownFloodsToEveryPeerLearnedGoesToOne) {
  Udp c;
  ASSERT_TRUE(a_->set_peers({{"hb", b_->listen_endpoint()}, {"hc", c.endpoint()}}).ok());
  ASSERT_TRUE(b_->set_peers({{"ha", a_->listen_endpoint()}}).ok());
  // Unknown unicast from a: both peers get it, encapsulated with VNI 100.
  const Frame unknown = frame_to(0x0b, 0x0a, 80, 0x44);
  vm_a_->send(unknown.data(), unknown.size());
  EXPECT_EQ(c.receive(), encapsulate(100, unknown));
  ASSERT_EQ(sink_b_.wait(1).size(), 1u);
  sink_b_.take();
  // b speaks: A learns b's MAC behind B.
  const Frame from_b = broadcast(0x0b, 60, 0x55);
  vm_b_->send(from_b.data(), from_b.size());
  ASSERT_EQ(sink_a_.wait(1).size(), 1u);
  // Now a's unicast to b goes to B alone.
  const Frame known = frame_to(0x0b, 0x0a, 90, 0x66);
  vm_a_->send(known.data(), known.size());
  auto got = sink_b_.wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], known);
  EXPECT_TRUE(c.receive(300ms).empty());
  // Broadcast still goes to both.
  const Frame bc = broadcast(0x0a, 70, 0x77);
  vm_a_->send(bc.data(), bc.size());
  EXPECT_EQ(c.receive(), encapsulate(100, bc));
}

TEST_F(TunnelTest, FramesFromPeersAreNotSentOnToOtherPeers) {
  Udp c;
  ASSERT_TRUE(a_->set_peers({{"hb", b_->listen_endpoint()}, {"hc", c.endpoint()}}).ok());
  ASSERT_TRUE(b_->set_peers({{"ha", a_->listen_endpoint()}}).ok());
  const uint64_t sent_before = a_->stats().tx_packets;
  // C broadcasts into VNI 100: a's VM gets it, B does not (A never forwards it).
  const Frame bc = broadcast(0x0c, 64, 0x12);
  c.send_to(a_->listen_endpoint(), encapsulate(100, bc));
  auto got = sink_a_.wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], bc);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(sink_b_.take().empty());
  EXPECT_EQ(a_->stats().tx_packets, sent_before);
  EXPECT_EQ(a_->stats().rx_packets, 1u);
  // a answers C's MAC: to C alone.
  const Frame answer = frame_to(0x0c, 0x0a, 64, 0x13);
  vm_a_->send(answer.data(), answer.size());
  EXPECT_EQ(c.receive(), encapsulate(100, answer));
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(sink_b_.take().empty());
}

TEST_F(TunnelTest, BadDatagramsAreDroppedAndCounted) {
  Udp c, stranger;
  ASSERT_TRUE(a_->set_peers({{"hc", c.endpoint()}}).ok());
  // a's MAC is known as local once it has sent something.
  const Frame hi = broadcast(0x0a, 60, 0);
  vm_a_->send(hi.data(), hi.size());
  ASSERT_FALSE(c.receive().empty());
  const Frame good = frame_to(0x0a, 0x0c, 60, 0x21);
  stranger.send_to(a_->listen_endpoint(), encapsulate(100, good));   // not a peer
  c.send_to(a_->listen_endpoint(), Frame{0x08, 0, 0});               // short
  c.send_to(a_->listen_endpoint(), encapsulate(100, Frame(10, 0)));  // runt frame
  Frame no_flag = encapsulate(100, good);
  no_flag[0] = 0;
  c.send_to(a_->listen_endpoint(), no_flag);
  Frame group_src = good;
  group_src[6] = 0x01;
  c.send_to(a_->listen_endpoint(), encapsulate(100, group_src));
  c.send_to(a_->listen_endpoint(), encapsulate(200, good));  // no switch for VNI 200
  c.send_to(a_->listen_endpoint(), encapsulate(100, frame_to(0x0a, 0x0a, 60, 0)));  // a's MAC
  Frame garbage(3000);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 7);
  c.send_to(a_->listen_endpoint(), garbage);  // flags byte 0: no I flag
  // Then one good one, which arrives: the tunnel lives on.
  c.send_to(a_->listen_endpoint(), encapsulate(100, good));
  auto got = sink_a_.wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], good);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(sink_a_.take().size(), 1u);
  const Tunnel::Stats s = a_->stats();
  EXPECT_EQ(s.rx_unknown_sender, 1u);
  EXPECT_EQ(s.rx_malformed, 5u);
  EXPECT_EQ(s.rx_unknown_vni, 1u);
  EXPECT_EQ(s.rx_spoofed, 1u);
  EXPECT_EQ(s.rx_packets, 1u);
}

TEST_F(TunnelTest, NoPeersNothingSentAndTooBigDropped) {
  const Frame hi = broadcast(0x0a, 60, 0);
  vm_a_->send(hi.data(), hi.size());
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(a_->stats().tx_packets, 0u);
  link_ab();
  const Frame big = broadcast(0x0a, Tunnel::kMaxTunnelFrame + 1, 0x5a);
  vm_a_->send(big.data(), big.size());
  const Frame fits = broadcast(0x0a, Tunnel::kMaxTunnelFrame, 0x5b);
  vm_a_->send(fits.data(), fits.size());
  auto got = sink_b_.wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], fits);
  EXPECT_EQ(a_->stats().tx_too_big, 1u);
}

TEST_F(TunnelTest, NetworksAreSeparate) {
  link_ab();
  Sink sink_b200;
  ASSERT_TRUE(b_->add_network(200, dir_ + "/b/vni-200").ok());
  auto vm_b200 = join(dir_ + "/b/vni-200", sink_b200);
  const Frame bc = broadcast(0x0a, 60, 0x31);
  vm_a_->send(bc.data(), bc.size());
  ASSERT_EQ(sink_b_.wait(1).size(), 1u);
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(sink_b200.take().empty());
  // A has no VNI 200: B's frames of it are dropped there.
  const Frame bc200 = broadcast(0x0d, 60, 0x32);
  vm_b200->send(bc200.data(), bc200.size());
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(sink_a_.take().empty());
  EXPECT_EQ(a_->stats().rx_unknown_vni, 1u);
  vm_b200->stop();
}

TEST_F(TunnelTest, PeerSetsAreCheckedWhole) {
  link_ab();
  const auto before = a_->peers();
  for (const std::vector<TunnelPeer>& bad : std::vector<std::vector<TunnelPeer>>{
           {{"h1", "127.0.0.1:5000"}, {"h2", "127.0.0.1:5000"}},  // twice
           {{"h1", "127.0.0.1"}},
           {{"", "127.0.0.1:5000"}},
           {{"h 1", "127.0.0.1:5000"}},
           {{"h1", "0.0.0.0:5000"}}}) {
    EXPECT_FALSE(a_->set_peers(bad).ok());
    EXPECT_EQ(a_->peers(), before);
  }
  // Our own endpoint is left out (the control plane may list every host).
  ASSERT_TRUE(
      a_->set_peers({{"ha", a_->advertised_endpoint()}, {"hb", b_->listen_endpoint()}}).ok());
  ASSERT_EQ(a_->peers().size(), 1u);
  EXPECT_EQ(a_->peers()[0].host, "hb");
  ASSERT_TRUE(a_->set_peers({}).ok());
  EXPECT_TRUE(a_->peers().empty());
}

TEST_F(TunnelTest, AddNetworkChecksItsArguments) {
  EXPECT_TRUE(a_->add_network(100, dir_ + "/a/vni-100").ok());  // again: nothing
  EXPECT_FALSE(a_->add_network(100, dir_ + "/a/other").ok());
  EXPECT_FALSE(a_->add_network(0, dir_ + "/a/vni-0").ok());
  EXPECT_FALSE(a_->add_network(Tunnel::kMaxVni + 1, dir_ + "/a/vni-x").ok());
  EXPECT_EQ(a_->networks(), std::vector<uint32_t>{100});
}

}  // namespace
}  // namespace nimbus::backends
