// The host's end of the private networks that span hosts: one UDP socket that links this
// host's per-network switches (switch_backend.h) with the same networks' switches on
// other hosts, in VXLAN's encapsulation (RFC 7348: an 8-byte header, flags 0x08 and a
// 24-bit network id, the VNI, before the Ethernet frame).
//
// For each network (VNI) with a switch on this host the tunnel is a port of that switch
// (a SwitchBackend of its own, in the port directory of its uid: root's under nimbusd, so
// no VM can bind there or pass for it). Since a switch floods broadcast, multicast and
// unknown unicast to every endpoint, the tunnel's endpoint receives every frame that may
// have to leave the host, and the unicast frames of the MACs the VMs learned behind it.
//   - A frame from the local switch: its source MAC is learned as local; it goes,
//     encapsulated, to the peer its destination MAC was learned from, or to every peer
//     when it is broadcast, multicast or unknown; not at all when its destination was
//     learned as local (the switch already delivered it) or it does not fit one UDP
//     datagram.
//   - A datagram from the network is taken only from a current peer's endpoint (address
//     and port), with the VXLAN I flag set, a VNI that has a switch here, and a whole
//     frame (14 bytes or more) whose source MAC is unicast and not one learned as local
//     (a peer cannot draw a local VM's frames); the source MAC is learned as that peer's,
//     and the frame is sent into the local switch as a port sends. Anything else is
//     dropped and counted, never an error that stops the tunnel.
// No loops: a frame from a peer goes into the switch only, which never hands it back to
// the tunnel (a switch does not send to the sender's own endpoint), so it never reaches
// another peer: every host is one hop from every other (a full mesh of peers).
//
// Trust. The tunnel authenticates nothing beyond the sender's address, as VXLAN: the
// network between the hosts (the underlay) must be one VMs and strangers cannot send
// from a peer's address on (a private network, or IPsec under it). What VMs can do is
// bounded by their own host's switch: a sandboxed VM's frames carry its pinned MAC before
// the tunnel ever sees them.
//
// Size. Frames of up to kMaxTunnelFrame bytes (one UDP datagram less the header) go
// through; bigger ones are dropped and counted. The socket does not set DF
// (IP_PMTUDISC_DONT): a datagram larger than the path's MTU is fragmented by IP rather
// than lost, so guests with the usual 1500-byte MTU still work over a 1500-byte
// underlay, only slower; guests told an MTU of 1450 (the 50 bytes of outer IPv4, UDP and
// VXLAN headers) never cause fragments.
#pragma once

#include <netinet/in.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backends/net/switch_backend.h"
#include "common/status.h"

namespace nimbus::backends {

struct TunnelPeer {
  std::string host;      // the peer's name (the cloud's host id), for humans
  std::string endpoint;  // "IPv4:PORT"
  bool operator==(const TunnelPeer&) const = default;
};

class Tunnel {
 public:
  static constexpr size_t kHeaderSize = 8;
  static constexpr uint8_t kFlagI = 0x08;  // "the VNI is valid"
  static constexpr uint32_t kMaxVni = (1u << 24) - 1;
  // The largest UDP payload over IPv4, less the VXLAN header.
  static constexpr size_t kMaxTunnelFrame = 65507 - kHeaderSize;
  static constexpr size_t kMaxPeers = 1024;
  static constexpr size_t kMaxLearnedMacs = 4096;  // per network
  static constexpr std::chrono::seconds kMacAge{300};

  struct Options {
    std::string listen;  // "IPv4:PORT" (port 0: any free one)
    // The endpoint peers know this host by (empty: the listen one). A peer list that
    // names it (the control plane may send every host) leaves it out.
    std::string advertise;
    // The group given the tunnel's switch endpoints (rw), so that VMMs running under
    // other uids of that group can send to them; (gid_t)-1: leave the endpoints alone.
    gid_t endpoint_group = static_cast<gid_t>(-1);
  };

  // Dropped and sent datagrams, by reason (all monotonic).
  struct Stats {
    uint64_t tx_packets = 0, tx_bytes = 0;  // datagrams sent to peers (a flood counts each)
    uint64_t rx_packets = 0, rx_bytes = 0;  // datagrams taken into a local switch
    uint64_t tx_errors = 0;                 // sendmsg failed (peer unreachable, buffers full)
    uint64_t tx_too_big = 0;                // a local frame over kMaxTunnelFrame
    uint64_t rx_unknown_sender = 0;         // not from a current peer's endpoint
    uint64_t rx_malformed = 0;              // short, truncated, no I flag, bad source MAC
    uint64_t rx_unknown_vni = 0;            // a VNI without a switch on this host
    uint64_t rx_spoofed = 0;                // a source MAC learned as local
  };

  // Binds the UDP socket (the error says why it cannot). start() starts receiving.
  static Result<std::unique_ptr<Tunnel>> create(const Options& options);
  ~Tunnel();  // stop()
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  Status start();
  void stop();

  // Joins the switch at `switch_path` (SwitchBackend::create) as network `vni`; joining a
  // network already joined (same path) does nothing, another path for it is refused.
  Status add_network(uint32_t vni, const std::string& switch_path);
  // Replaces the peer set. Each endpoint must be IPv4:PORT (port 1-65535) and given once;
  // at most kMaxPeers. Refused whole (nothing changes) otherwise. Frames learned from
  // peers are forgotten (they flood again until learned anew).
  Status set_peers(const std::vector<TunnelPeer>& peers);

  std::vector<TunnelPeer> peers() const;  // as set, without our own endpoint
  std::vector<uint32_t> networks() const;
  std::string listen_endpoint() const;      // the bound address, "IP:PORT"
  std::string advertised_endpoint() const;  // Options::advertise, or the bound address
  Stats stats() const;

  // The 8-byte VXLAN header of `vni`.
  static void encode_header(uint32_t vni, uint8_t out[kHeaderSize]);
  // The VNI of a VXLAN header (nullopt without the I flag or when `len` is short).
  static std::optional<uint32_t> decode_header(const uint8_t* data, size_t len);
  // "IPv4:PORT" to an address (port 0 only with `allow_port_zero`).
  static Result<sockaddr_in> parse_endpoint(const std::string& text, bool allow_port_zero = false);
  static std::string format_endpoint(const sockaddr_in& addr);

 private:
  struct Where {
    bool local = false;
    uint64_t peer = 0;  // the peer's key (endpoint_key) when not local
    std::chrono::steady_clock::time_point seen;
  };
  struct Network {
    uint32_t vni = 0;
    std::string path;
    std::unique_ptr<SwitchBackend> port;
    std::unordered_map<uint64_t, Where> macs;  // under mu_
  };
  struct Counters {
    std::atomic<uint64_t> tx_packets{0}, tx_bytes{0}, rx_packets{0}, rx_bytes{0}, tx_errors{0},
        tx_too_big{0}, rx_unknown_sender{0}, rx_malformed{0}, rx_unknown_vni{0}, rx_spoofed{0};
  };

  Tunnel() = default;
  void run();
  void receive_all();
  void from_switch(Network& net, const uint8_t* frame, size_t len);
  void send_to(const sockaddr_in& to, const uint8_t* header, const uint8_t* frame, size_t len);
  static uint64_t endpoint_key(const sockaddr_in& a);

  Options options_;
  sockaddr_in bound_{};
  std::string advertised_;
  int sock_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;  // guards everything below but the buffers
  std::map<uint32_t, std::unique_ptr<Network>> networks_;
  std::vector<TunnelPeer> peers_;
  std::map<uint64_t, sockaddr_in> peer_addrs_;  // endpoint_key -> address
  Counters counters_;

  std::vector<uint8_t> rx_buf_;  // the receive thread's
};

}  // namespace nimbus::backends
