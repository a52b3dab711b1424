// PUT /v1/vms/NAME/forwards through the daemon over fake VMM processes: what is checked,
// applied to a live VMM, saved, and what a refusal leaves.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "config/vm_config.h"
#include "host/daemon_test_fixture.h"

namespace nimbus::host {
namespace {

using config::PortForward;

// A TCP port on 127.0.0.1 that is free now.
uint16_t free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// Listens on 127.0.0.1:port, as a VMM holding a forward (or another program) would.
class Listener {
 public:
  explicit Listener(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd_, 1) == 0;
  }
  ~Listener() { ::close(fd_); }
  bool ok() const { return ok_; }

 private:
  int fd_;
  bool ok_ = false;
};

PortForward fwd(uint16_t port, uint16_t guest = 80, const std::string& address = "127.0.0.1") {
  return {"tcp", address, port, "", guest};
}

// The forwards of eth0 in the VM's config.json (what its next VMM starts with).
std::vector<PortForward> config_forwards(const std::string& state_dir, const std::string& vm) {
  std::ifstream in(state_dir + "/vms/" + vm + "/config.json");
  auto c = config::parse_vm_config(config::json::parse(in));
  EXPECT_TRUE(c.ok()) << c.message();
  return c.ok() ? c->nics.at(0).forwards : std::vector<PortForward>{};
}

using ForwardsTest = DaemonTest;

TEST_F(ForwardsTest, ARunningVmTakesThemAtOnceAndKeepsThem) {
  create("web1");
  const std::vector<PortForward> set = {fwd(free_port()), fwd(free_port(), 22)};
  auto r = daemon->set_forwards("web1", set);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->record.forwards, set);
  EXPECT_EQ(fake->count("forwards web1 2"), 1u);
  {
    std::lock_guard<std::mutex> lock(fake->mu);
    EXPECT_EQ(fake->forwards["web1"], set);
  }
  EXPECT_EQ(get("web1").forwards, set);
  restart_daemon();
  EXPECT_EQ(get("web1").forwards, set);
  // And the next VMM starts with them.
  ASSERT_TRUE(daemon->stop_vm("web1", true, 0).ok());
  ASSERT_TRUE(daemon->start_vm("web1").ok());
  EXPECT_EQ(config_forwards(options.state_dir, "web1"), set);
  // Removing them all.
  ASSERT_TRUE(daemon->set_forwards("web1", {}).ok());
  EXPECT_TRUE(get("web1").forwards.empty());
  EXPECT_EQ(fake->count("forwards web1 0"), 1u);
}

TEST_F(ForwardsTest, APausedVmTakesThemToo) {
  create("web1");
  ASSERT_TRUE(daemon->pause_vm("web1").ok());
  ASSERT_TRUE(daemon->set_forwards("web1", {fwd(free_port())}).ok());
  EXPECT_EQ(fake->count("forwards web1 1"), 1u);
  EXPECT_EQ(get("web1").state, "paused");
}

TEST_F(ForwardsTest, AStoppedVmSavesThemForItsNextStart) {
  create("web1", 1, 256, false);
  const std::vector<PortForward> set = {fwd(free_port())};
  ASSERT_TRUE(daemon->set_forwards("web1", set).ok());
  EXPECT_EQ(fake->count("forwards web1 1"), 0u) << "no VMM to tell";
  EXPECT_EQ(get("web1").forwards, set);
  ASSERT_TRUE(daemon->start_vm("web1").ok());
  EXPECT_EQ(config_forwards(options.state_dir, "web1"), set);
}

TEST_F(ForwardsTest, WhenTheVmmRefusesNothingIsSaved) {
  create("web1");
  const std::vector<PortForward> before = {fwd(free_port())};
  ASSERT_TRUE(daemon->set_forwards("web1", before).ok());
  fake->forwards_error = Status::invalid_argument(
      "network interface 'eth0': hostfwd tcp 127.0.0.1:80: Permission denied");
  auto r = daemon->set_forwards("web1", {fwd(free_port())});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(r.message(), "Permission denied")) << r.message();
  EXPECT_EQ(get("web1").forwards, before);
  restart_daemon();
  EXPECT_EQ(get("web1").forwards, before);
}

TEST_F(ForwardsTest, PortsOfOtherVmsAndOfTheHostAreRefused) {
  create("web1");
  create("web2");
  const uint16_t port = free_port();
  ASSERT_TRUE(daemon->set_forwards("web2", {fwd(port)}).ok());
  for (const PortForward& f : {fwd(port), fwd(port, 81, "0.0.0.0")}) {
    auto r = daemon->set_forwards("web1", {f});
    EXPECT_EQ(r.code(), Code::kConflict) << f.host_address;
    EXPECT_TRUE(contains(r.message(), "already forwarded to VM 'web2'")) << r.message();
  }
  // The same port on another address is another socket.
  ASSERT_TRUE(daemon->set_forwards("web1", {fwd(port, 80, "127.0.0.2")}).ok());
  // A port some program holds.
  const uint16_t busy = free_port();
  Listener other(busy);
  ASSERT_TRUE(other.ok());
  auto r = daemon->set_forwards("web1", {fwd(busy)});
  EXPECT_EQ(r.code(), Code::kConflict);
  EXPECT_TRUE(contains(r.message(), "in use")) << r.message();
  EXPECT_EQ(get("web1").forwards, std::vector<PortForward>{fwd(port, 80, "127.0.0.2")});
  EXPECT_EQ(daemon->set_forwards("ghost", {}).code(), Code::kNotFound);
}

TEST_F(ForwardsTest, ForwardsItsOwnVmmHoldsAreNotInUse) {
  const uint16_t kept = free_port();
  create("web1");
  ASSERT_TRUE(daemon->set_forwards("web1", {fwd(kept)}).ok());
  Listener vmm(kept);  // the VMM listens on its forward
  ASSERT_TRUE(vmm.ok());
  const std::vector<PortForward> more = {fwd(kept), fwd(free_port(), 443)};
  auto r = daemon->set_forwards("web1", more);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(get("web1").forwards, more);
  // A stopped VM has no VMM: then a held port is someone else's.
  ASSERT_TRUE(daemon->stop_vm("web1", true, 0).ok());
  EXPECT_EQ(daemon->set_forwards("web1", {fwd(kept, 8080)}).code(), Code::kConflict);
}

TEST_F(ForwardsTest, ARestoredVmGetsItsCurrentForwards) {
  create("web1");
  ASSERT_TRUE(daemon->create_snapshot("web1", "s1").ok());
  const std::vector<PortForward> now = {fwd(free_port())};
  ASSERT_TRUE(daemon->set_forwards("web1", now).ok());
  {
    std::lock_guard<std::mutex> lock(fake->mu);
    fake->forwards.clear();
  }
  ASSERT_TRUE(daemon->restore_snapshot("web1", "s1").ok());
  std::lock_guard<std::mutex> lock(fake->mu);
  EXPECT_EQ(fake->forwards["web1"], now);
}

}  // namespace
}  // namespace nimbus::host
