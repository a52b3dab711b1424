// A host-local virtual switch: VMs given the same path share one Ethernet segment, with
// no daemon to start and none to die.
//
// Design. The switch is a directory, PATH.d (created on first use, mode 0700 so only the
// owner's VMs can join). Each VM binds its own unix datagram socket in it, named
// "<pid>-<n>", and is a port of the switch. Sending a frame:
//   - unicast to a MAC learned from frames we received: one sendto() to that endpoint;
//   - broadcast, multicast or unknown unicast: one sendto() to every other endpoint in
//     the directory (the directory listing is the port list, so a new VM is reached at
//     once).
// Every endpoint learns source MAC → endpoint from what it receives, like a learning
// bridge, but each VM keeps its own table. A datagram is accepted only when its sender is
// bound inside the same directory (so frames of one switch never reach another, and
// unbound or foreign senders are ignored), is not ourselves, and is a whole frame
// (14..kMaxFrame bytes). Endpoints whose process has died (sendto says ECONNREFUSED and
// the pid in the name is gone) are unlinked by whoever notices; stop() unlinks our own.
// Sends never block: a peer whose socket queue is full loses the frame, as on a congested
// switch. The directory itself is left behind (removing it would race with a VM joining).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backends/net/net_backend.h"

namespace nimbus::backends {

class SwitchBackend : public NetBackend {
 public:
  // Joins the switch named `path`: creates PATH.d if needed and binds our endpoint.
  static Result<std::unique_ptr<SwitchBackend>> create(const std::string& path);
  ~SwitchBackend() override;
  SwitchBackend(const SwitchBackend&) = delete;
  SwitchBackend& operator=(const SwitchBackend&) = delete;

  Status start(Receiver receiver) override;
  void send(const uint8_t* frame, size_t len) override;
  void resume_receive() override;
  void stop() override;

  // Our endpoint socket's path (PATH.d/<pid>-<n>, canonical).
  const std::string& endpoint_path() const { return endpoint_path_; }

  // Largest datagram taken as a frame: an Ethernet header plus the largest IPv4 packet,
  // so offloaded (TSO) frames fit too.
  static constexpr size_t kMaxFrame = 14 + 65535;
  static constexpr size_t kMaxQueuedFrames = 256;
  static constexpr size_t kMaxLearnedMacs = 4096;
  static constexpr std::chrono::seconds kMacAge{300};

 private:
  enum class SendResult { kSent, kGone, kDropped };
  struct Learned {
    std::string endpoint;  // name inside dir_
    std::chrono::steady_clock::time_point seen;
  };

  SwitchBackend() = default;
  void run();
  void receive_all();
  void wake();
  void deliver(const uint8_t* frame, size_t len);
  void flush_pending();
  void flood(const uint8_t* frame, size_t len);
  SendResult send_to(const std::string& name, const uint8_t* frame, size_t len);
  void learn(const uint8_t* src_mac, const std::string& endpoint);
  // The endpoint name when `sender` is a socket path in our directory other than ours.
  std::string endpoint_of(const std::string& sender) const;

  std::string dir_;            // canonical PATH.d
  std::string name_;           // our endpoint's name in dir_
  std::string endpoint_path_;  // dir_ + "/" + name_
  int sock_ = -1;
  int wake_fd_ = -1;  // eventfd
  Receiver receiver_;
  std::thread thread_;
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> resume_{false};

  std::mutex table_mu_;  // guards table_
  std::unordered_map<uint64_t, Learned> table_;

  // Owned by the switch thread.
  std::deque<std::vector<uint8_t>> rx_pending_;
  std::vector<uint8_t> rx_buf_;
};

}  // namespace nimbus::backends
