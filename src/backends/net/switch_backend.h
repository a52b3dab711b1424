// A host-local virtual switch: VMs given the same path share one Ethernet segment, with
// no daemon to start and none to die.
//
// Design. The switch is a directory, PATH.d (created on first use, mode 0700). Inside it,
// each uid has a port directory PATH.d/<uid>, owned by that uid and writable by nobody
// else; each VM binds its own unix datagram socket in its uid's port directory, named
// "<pid>-<n>", and is a port of the switch. Sending a frame:
//   - unicast to a MAC learned from frames we received: one sendto() to that endpoint;
//   - broadcast, multicast or unknown unicast: one sendto() to every other endpoint of
//     every port directory (the listings are the port list, so a new VM is reached at
//     once).
// Every endpoint learns source MAC → endpoint from what it receives, like a learning
// bridge, but each VM keeps its own table. A datagram is accepted only when its sender is
// bound at PATH.d/<uid>/<pid>-<n> where PATH.d/<uid> is a real directory owned by <uid>
// and not writable by group or others, is not ourselves, and is a whole frame
// (14..kMaxFrame bytes). Endpoints whose process has died (sendto says ECONNREFUSED and
// the pid in the name is gone) are unlinked by whoever can; stop() unlinks our own.
// Sends never block: a peer whose socket queue is full loses the frame, as on a congested
// switch. The directories are left behind (removing them would race with a VM joining).
//
// Why port directories (VMs of different uids on one switch, as under nimbusd). A unix
// datagram socket is known by its path, and the receiver learns only the sender's path
// (SO_PEERCRED does not work on unconnected datagram sockets). So the switch's security
// is who may create, rename or unlink names where endpoints live:
//   - PATH.d itself must not be writable by group or others (create() refuses to join
//     one that is): a VM can neither add a port directory nor rename or replace another
//     uid's. nimbusd (root) creates PATH.d/<uid> for each VM's uid (prepare_port_dir).
//   - PATH.d/<uid> is writable by <uid> only: no other VM can unlink or rename an
//     endpoint there, nor bind a socket there. So nobody can take over another VM's
//     endpoint (and receive its frames or cut it off), and a datagram whose sender path is
//     in PATH.d/<uid> really comes from <uid> (the address of a unix socket is the path it
//     was bound at, and binding there needed write access to that directory) — no VM can
//     pass for another's endpoint, so nobody can make peers learn a MAC to a foreign
//     endpoint by spoofing the endpoint. The receiver checks the owner and mode of the
//     directory (cached for a second) rather than trusting the name alone.
//   - Sockets are group-writable (VMMs run with umask 007 and share a group), which lets
//     a peer sendto() them, and nothing else: write access to a socket file gives no way
//     to receive from it or remove it.
// A sticky, group-writable PATH.d would not do: a VM could create a directory named
// after another uid before that uid's first VM (squatting it), or bind a socket in a
// directory of its own, rename the directory away and wait for the name to be reused —
// a socket's address stays the path it was bound at. Hence PATH.d is closed to VMs.
// MACs. On a learning switch, a port that sends with another's source MAC makes the others
// send that MAC's unicast frames to it. So the owner of PATH.d can pin a port's source
// MACs in PATH.d/<uid>.mac (one per line; VMs cannot write there): a receiver drops, and
// does not learn from, a frame of a pinned port whose source MAC is not pinned, and a
// pin file it cannot trust (wrong owner, writable by others, unparsable) makes the port
// untrusted. nimbusd pins each VM's eth1 MAC. Ports without a pin file (a user's own VMs
// under one uid) may use any MAC.
#pragma once

#include <sys/types.h>

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
  // Joins the switch named `path`: creates PATH.d and our port directory PATH.d/<euid>
  // if needed (and allowed), checks both are closed to others, and binds our endpoint.
  static Result<std::unique_ptr<SwitchBackend>> create(const std::string& path);
  // For a privileged manager (nimbusd): makes PATH.d/<uid> a directory owned by uid:gid,
  // mode 0750 (the group may list and reach the endpoints, not add or remove them).
  // PATH.d must exist. Never follows a symlink; replaces a non-directory in the way.
  // With `mac` ("52:54:00:81:00:02"), also pins it in PATH.d/<uid>.mac: peers then take
  // frames from that port only with that source MAC (without, a pin left from before is
  // removed).
  static Status prepare_port_dir(const std::string& path, uid_t uid, gid_t gid,
                                 const std::string& mac = "");
  // Whether `dir`/`name` is a port directory peers trust: `name` is a uid in decimal, and
  // `dir`/`name` is a directory (not a symlink) owned by that uid, not writable by group
  // or others.
  static bool trusted_port_dir(const std::string& dir, const std::string& name);
  ~SwitchBackend() override;
  SwitchBackend(const SwitchBackend&) = delete;
  SwitchBackend& operator=(const SwitchBackend&) = delete;

  Status start(Receiver receiver) override;
  void send(const uint8_t* frame, size_t len) override;
  void resume_receive() override;
  void stop() override;

  // Our endpoint socket's path (PATH.d/<uid>/<pid>-<n>, canonical).
  const std::string& endpoint_path() const { return endpoint_path_; }

  // Largest datagram taken as a frame: an Ethernet header plus the largest IPv4 packet,
  // so offloaded (TSO) frames fit too.
  static constexpr size_t kMaxFrame = 14 + 65535;
  static constexpr size_t kMaxQueuedFrames = 256;
  static constexpr size_t kMaxLearnedMacs = 4096;
  static constexpr std::chrono::seconds kMacAge{300};
  // A flood sends to at most this many endpoints of one port directory: a VM that fills
  // its directory with socket files must not make every peer's broadcast unbounded.
  static constexpr size_t kMaxEndpointsPerPortDir = 256;
  // How long a verdict on a sender's port directory is reused.
  static constexpr std::chrono::seconds kPortDirCheckAge{1};

 private:
  enum class SendResult { kSent, kGone, kDropped };
  struct Learned {
    std::string endpoint;  // "<uid>/<pid>-<n>" inside dir_
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
  // "<uid>/<pid>-<n>" when `sender` is the path of another endpoint in a trusted port
  // directory of our switch and `src_mac` is allowed for that port; empty otherwise.
  // Switch thread only.
  std::string endpoint_of(const std::string& sender, const uint8_t* src_mac);

  std::string dir_;            // canonical PATH.d
  std::string name_;           // our endpoint: "<uid>/<pid>-<n>" inside dir_
  std::string endpoint_path_;  // dir_ + "/" + name_
  uid_t dir_owner_ = 0;        // PATH.d's owner: pin files must be its (or root's)
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
  struct PortDirVerdict {
    bool trusted;
    std::vector<uint64_t> macs;  // pinned source MACs; empty: any
    std::chrono::steady_clock::time_point checked;
  };
  PortDirVerdict check_port(const std::string& port) const;
  std::unordered_map<std::string, PortDirVerdict> port_dirs_;
};

}  // namespace nimbus::backends
