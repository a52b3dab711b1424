#include "backends/net/switch_backend.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

namespace nimbus::backends {
namespace {

using Frame = std::vector<uint8_t>;
using namespace std::chrono_literals;

class FrameSink {
 public:
  bool receive(const uint8_t* frame, size_t len) {
    std::lock_guard lock(mu_);
    frames_.emplace_back(frame, frame + len);
    cv_.notify_all();
    return true;
  }
  // Waits until `count` frames have arrived (or the timeout) and returns them all.
  std::vector<Frame> wait(size_t count, std::chrono::milliseconds timeout = 1000ms) {
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

Frame make_frame(uint8_t dst_last, uint8_t src_last, size_t len, uint8_t fill) {
  Frame f(len, fill);
  const uint8_t base[6] = {0x52, 0x54, 0x00, 0, 0, 0};
  std::copy(base, base + 6, f.begin());
  std::copy(base, base + 6, f.begin() + 6);
  f[5] = dst_last;
  f[11] = src_last;
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

Frame broadcast_from(uint8_t src_last, size_t len, uint8_t fill) {
  Frame f = make_frame(0, src_last, len, fill);
  std::fill(f.begin(), f.begin() + 6, 0xff);
  return f;
}

class SwitchBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nimbus-switch-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ports_.clear();
    std::filesystem::remove_all(dir_);
  }

  struct Port {
    std::unique_ptr<SwitchBackend> backend;
    std::unique_ptr<FrameSink> sink = std::make_unique<FrameSink>();
  };

  Port& add_port(const std::string& name) {
    auto created = SwitchBackend::create(dir_ + "/" + name);
    EXPECT_TRUE(created.ok()) << created.message();
    auto port = std::make_unique<Port>();
    port->backend = std::move(*created);
    FrameSink* sink = port->sink.get();
    EXPECT_TRUE(
        port->backend->start([sink](const uint8_t* f, size_t n) { return sink->receive(f, n); })
            .ok());
    ports_.push_back(std::move(port));
    return *ports_.back();
  }

  std::string dir_;
  std::vector<std::unique_ptr<Port>> ports_;
};

TEST_F(SwitchBackendTest, BroadcastReachesTheOthersNotTheSender) {
  Port& a = add_port("net0.sock");
  Port& b = add_port("net0.sock");
  Port& c = add_port("net0.sock");
  Port& other = add_port("net1.sock");        // another switch
  Frame f = broadcast_from(0xa, 1514, 0x5a);  // a full-size frame
  a.backend->send(f.data(), f.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{f});
  EXPECT_EQ(c.sink->wait(1), std::vector<Frame>{f});
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(a.sink->take().empty()) << "echoed back to the sender";
  EXPECT_TRUE(other.sink->take().empty()) << "crossed to another switch";
}

TEST_F(SwitchBackendTest, UnicastToALearnedMacReachesOnlyItsOwner) {
  Port& a = add_port("net0.sock");
  Port& b = add_port("net0.sock");
  Port& c = add_port("net0.sock");
  // b speaks first, so a learns where b's MAC lives.
  Frame hello = broadcast_from(0xb, 60, 1);
  b.backend->send(hello.data(), hello.size());
  ASSERT_EQ(a.sink->wait(1).size(), 1u);
  ASSERT_EQ(c.sink->wait(1).size(), 1u);
  c.sink->take();

  Frame to_b = make_frame(0xb, 0xa, 100, 2);
  a.backend->send(to_b.data(), to_b.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{to_b});
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(c.sink->take().empty()) << "a learned unicast was flooded";

  // An unknown destination is flooded to everyone else.
  b.sink->take();
  Frame unknown = make_frame(0xee, 0xa, 80, 3);
  a.backend->send(unknown.data(), unknown.size());
  EXPECT_EQ(b.sink->wait(1), std::vector<Frame>{unknown});
  EXPECT_EQ(c.sink->wait(1), std::vector<Frame>{unknown});
}

TEST_F(SwitchBackendTest, ForgetsAStoppedPeer) {
  Port& a = add_port("net0.sock");
  Port& b = add_port("net0.sock");
  Port& c = add_port("net0.sock");
  Frame hello = broadcast_from(0xb, 60, 1);
  b.backend->send(hello.data(), hello.size());
  ASSERT_EQ(a.sink->wait(1).size(), 1u);
  ASSERT_EQ(c.sink->wait(1).size(), 1u);  // the broadcast reaches c too; clear it below
  std::string b_path = b.backend->endpoint_path();
  b.backend->stop();
  EXPECT_FALSE(std::filesystem::exists(b_path)) << "stop() left its socket behind";
  c.sink->take();
  // b's MAC is now unreachable: the frame falls back to flooding and still reaches c.
  Frame to_b = make_frame(0xb, 0xa, 60, 2);
  a.backend->send(to_b.data(), to_b.size());
  EXPECT_EQ(c.sink->wait(1), std::vector<Frame>{to_b});
}

TEST_F(SwitchBackendTest, GarbageIsIgnored) {
  Port& a = add_port("net0.sock");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, a.backend->endpoint_path().c_str(), sizeof addr.sun_path - 1);
  auto* to = reinterpret_cast<sockaddr*>(&addr);

  // An unbound sender, a sender outside the switch directory, and a runt from inside it.
  Frame f = broadcast_from(0x66, 60, 9);
  int unbound = socket(AF_UNIX, SOCK_DGRAM, 0);
  EXPECT_EQ(sendto(unbound, f.data(), f.size(), 0, to, sizeof addr), 60);
  int outsider = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un out{};
  out.sun_family = AF_UNIX;
  std::string out_path = dir_ + "/outsider";
  std::strncpy(out.sun_path, out_path.c_str(), sizeof out.sun_path - 1);
  ASSERT_EQ(bind(outsider, reinterpret_cast<sockaddr*>(&out), sizeof out), 0);
  EXPECT_EQ(sendto(outsider, f.data(), f.size(), 0, to, sizeof addr), 60);
  int insider = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un in{};
  in.sun_family = AF_UNIX;
  std::string in_path = std::filesystem::canonical(dir_ + "/net0.sock.d").string() + "/1-999";
  std::strncpy(in.sun_path, in_path.c_str(), sizeof in.sun_path - 1);
  ASSERT_EQ(bind(insider, reinterpret_cast<sockaddr*>(&in), sizeof in), 0);
  EXPECT_EQ(sendto(insider, "xyz", 3, 0, to, sizeof addr), 3);
  std::vector<uint8_t> huge(SwitchBackend::kMaxFrame + 100, 0xff);
  sendto(insider, huge.data(), huge.size(), 0, to, sizeof addr);  // may fail: too big
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(a.sink->take().empty());

  // A proper frame from a proper endpoint still gets through.
  EXPECT_EQ(sendto(insider, f.data(), f.size(), 0, to, sizeof addr), 60);
  EXPECT_EQ(a.sink->wait(1), std::vector<Frame>{f});
  close(unbound);
  close(outsider);
  close(insider);
}

TEST_F(SwitchBackendTest, RemovesEndpointsOfDeadProcesses) {
  Port& a = add_port("net0.sock");
  std::string d = std::filesystem::canonical(dir_ + "/net0.sock.d").string();
  // A socket file nobody is bound to, named after a pid that cannot exist.
  std::string stale = d + "/999999999-0";
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(s);
  Frame f = broadcast_from(0xa, 60, 1);
  a.backend->send(f.data(), f.size());
  EXPECT_FALSE(std::filesystem::exists(stale));
}

TEST_F(SwitchBackendTest, TooLongPathIsAnError) {
  auto created = SwitchBackend::create(dir_ + "/" + std::string(100, 'x'));
  ASSERT_FALSE(created.ok());
  EXPECT_NE(created.message().find("too long"), std::string::npos) << created.message();
}

}  // namespace
}  // namespace nimbus::backends
