#include "backends/net/tunnel.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace nimbus::backends {

namespace {

constexpr size_t kMinFrame = 14;

uint64_t mac_key(const uint8_t* mac) {
  uint64_t key = 0;
  for (int i = 0; i < 6; ++i) key = key << 8 | mac[i];
  return key;
}

bool valid_host_name(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_'))
      return false;
  }
  return true;
}

}  // namespace

uint64_t Tunnel::endpoint_key(const sockaddr_in& a) {
  return uint64_t{ntohl(a.sin_addr.s_addr)} << 16 | ntohs(a.sin_port);
}

void Tunnel::encode_header(uint32_t vni, uint8_t out[kHeaderSize]) {
  out[0] = kFlagI;
  out[1] = out[2] = out[3] = 0;
  out[4] = static_cast<uint8_t>(vni >> 16);
  out[5] = static_cast<uint8_t>(vni >> 8);
  out[6] = static_cast<uint8_t>(vni);
  out[7] = 0;
}

std::optional<uint32_t> Tunnel::decode_header(const uint8_t* data, size_t len) {
  // RFC 7348: the I flag must be set; the reserved bits are ignored on receipt.
  if (len < kHeaderSize || (data[0] & kFlagI) == 0) return std::nullopt;
  return uint32_t{data[4]} << 16 | uint32_t{data[5]} << 8 | data[6];
}

Result<sockaddr_in> Tunnel::parse_endpoint(const std::string& text, bool allow_port_zero) {
  auto bad = [&] {
    return Status::invalid_argument(fmt::format(
        "'{}' is not an endpoint IPv4:PORT such as 192.0.2.10:4789", text.substr(0, 64)));
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size() ||
      text.size() - colon - 1 > 5) {
    return bad();
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &a.sin_addr) != 1) return bad();
  unsigned port = 0;
  for (size_t i = colon + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return bad();
    port = port * 10 + static_cast<unsigned>(text[i] - '0');
  }
  if (port > 65535 || (port == 0 && !allow_port_zero) || (text[colon + 1] == '0' && port != 0))
    return bad();
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

std::string Tunnel::format_endpoint(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return fmt::format("{}:{}", ip, ntohs(a.sin_port));
}

Result<std::unique_ptr<Tunnel>> Tunnel::create(const Options& options) {
  auto listen = parse_endpoint(options.listen, true);
  if (!listen.ok()) return listen.status().with_context("tunnel listen address");
  if (!options.advertise.empty()) {
    auto adv = parse_endpoint(options.advertise);
    if (!adv.ok()) return adv.status().with_context("tunnel advertised address");
    if (adv->sin_addr.s_addr == htonl(INADDR_ANY))
      return Status::invalid_argument("tunnel advertised address: 0.0.0.0 is not reachable");
  }
  std::unique_ptr<Tunnel> t(new Tunnel());
  t->options_ = options;
  t->sock_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (t->sock_ < 0) return Status::error(fmt::format("tunnel: socket: {}", std::strerror(errno)));
  // Big frames are fragmented by IP rather than refused (see the header).
  int pmtu = IP_PMTUDISC_DONT;
  setsockopt(t->sock_, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
  int buf = 4 << 20;
  setsockopt(t->sock_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(t->sock_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  if (bind(t->sock_, reinterpret_cast<const sockaddr*>(&*listen), sizeof *listen) != 0) {
    return Status::error(
        fmt::format("tunnel: cannot bind UDP {}: {}", options.listen, std::strerror(errno)));
  }
  socklen_t len = sizeof t->bound_;
  getsockname(t->sock_, reinterpret_cast<sockaddr*>(&t->bound_), &len);
  if (!options.advertise.empty()) {
    t->advertised_ = options.advertise;
  } else if (t->bound_.sin_addr.s_addr == htonl(INADDR_ANY)) {
    return Status::invalid_argument(fmt::format(
        "tunnel: listening on {} (every address) needs an advertised IPv4:PORT", options.listen));
  } else {
    t->advertised_ = format_endpoint(t->bound_);
  }
  t->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (t->wake_fd_ < 0)
    return Status::error(fmt::format("tunnel: eventfd: {}", std::strerror(errno)));
  t->rx_buf_.resize(65536);
  return t;
}

Tunnel::~Tunnel() {
  stop();
  if (sock_ >= 0) close(sock_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status Tunnel::start() {
  if (started_) return Status::error("tunnel: already started");
  started_ = true;
  thread_ = std::thread([this] { run(); });
  return {};
}

void Tunnel::stop() {
  stopping_.store(true);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  // The switch ports' threads call from_switch: end them before anything goes away.
  // Not under mu_: a port's thread may be waiting for it in from_switch.
  std::vector<SwitchBackend*> ports;
  {
    std::lock_guard lock(mu_);
    for (auto& [vni, net] : networks_) ports.push_back(net->port.get());
  }
  for (SwitchBackend* port : ports) port->stop();
}

Status Tunnel::add_network(uint32_t vni, const std::string& switch_path) {
  if (vni == 0 || vni > kMaxVni)
    return Status::invalid_argument(fmt::format("tunnel: VNI {} is not 1-{}", vni, kMaxVni));
  {
    std::lock_guard lock(mu_);
    if (auto it = networks_.find(vni); it != networks_.end()) {
      if (it->second->path == switch_path) return {};
      return Status::conflict(
          fmt::format("tunnel: VNI {} is already on switch {}", vni, it->second->path));
    }
  }
  if (stopping_.load()) return Status::error("tunnel: stopped");
  auto port = SwitchBackend::create(switch_path);
  if (!port.ok()) return port.status().with_context(fmt::format("tunnel: VNI {}", vni));
  // VMMs of other uids (the VM group) must be able to send to our endpoint.
  if (options_.endpoint_group != static_cast<gid_t>(-1)) {
    const std::string& ep = (*port)->endpoint_path();
    if (chown(ep.c_str(), static_cast<uid_t>(-1), options_.endpoint_group) != 0 ||
        chmod(ep.c_str(), 0660) != 0) {
      return Status::error(fmt::format("tunnel: VNI {}: cannot open {} to the VM group: {}", vni,
                                       ep, std::strerror(errno)));
    }
  }
  auto net = std::make_unique<Network>();
  net->vni = vni;
  net->path = switch_path;
  net->port = std::move(*port);
  Network* raw = net.get();
  {
    std::lock_guard lock(mu_);
    if (networks_.count(vni) != 0) return {};  // a concurrent add won; ours goes away
    networks_[vni] = std::move(net);
  }
  // Started once in the table, so from_switch finds everything in place.
  return raw->port->start([this, raw](const uint8_t* frame, size_t len) {
    from_switch(*raw, frame, len);
    return true;  // never held back: a frame that cannot go out is dropped
  });
}

Status Tunnel::set_peers(const std::vector<TunnelPeer>& peers) {
  if (peers.size() > kMaxPeers)
    return Status::invalid_argument(fmt::format("at most {} tunnel peers", kMaxPeers));
  std::vector<TunnelPeer> kept;
  std::map<uint64_t, sockaddr_in> addrs;
  std::set<uint64_t> seen;
  auto self = parse_endpoint(advertised_);
  const uint64_t self_key = self.ok() ? endpoint_key(*self) : 0;
  for (size_t i = 0; i < peers.size(); ++i) {
    const TunnelPeer& p = peers[i];
    if (!valid_host_name(p.host)) {
      return Status::invalid_argument(
          fmt::format("peers[{}]: host must be 1-63 of a-z A-Z 0-9 - . _ (the peer's host id)", i));
    }
    auto a = parse_endpoint(p.endpoint);
    if (!a.ok()) return Status::invalid_argument(fmt::format("peers[{}]: {}", i, a.message()));
    if (a->sin_addr.s_addr == htonl(INADDR_ANY))
      return Status::invalid_argument(fmt::format("peers[{}]: 0.0.0.0 is not an endpoint", i));
    const uint64_t key = endpoint_key(*a);
    if (!seen.insert(key).second) {
      return Status::invalid_argument(
          fmt::format("peers[{}]: endpoint {} is given twice", i, p.endpoint));
    }
    if (key == self_key) continue;  // ourselves: the control plane lists every host
    kept.push_back(TunnelPeer{p.host, format_endpoint(*a)});
    addrs[key] = *a;
  }
  std::lock_guard lock(mu_);
  peers_ = std::move(kept);
  peer_addrs_ = std::move(addrs);
  for (auto& [vni, net] : networks_) {
    for (auto it = net->macs.begin(); it != net->macs.end();) {
      it = it->second.local ? std::next(it) : net->macs.erase(it);
    }
  }
  return {};
}

std::vector<TunnelPeer> Tunnel::peers() const {
  std::lock_guard lock(mu_);
  return peers_;
}

std::vector<uint32_t> Tunnel::networks() const {
  std::lock_guard lock(mu_);
  std::vector<uint32_t> out;
  for (const auto& [vni, net] : networks_) out.push_back(vni);
  return out;
}

std::string Tunnel::listen_endpoint() const { return format_endpoint(bound_); }
std::string Tunnel::advertised_endpoint() const { return advertised_; }

Tunnel::Stats Tunnel::stats() const {
  Stats s;
  s.tx_packets = counters_.tx_packets.load();
  s.tx_bytes = counters_.tx_bytes.load();
  s.rx_packets = counters_.rx_packets.load();
  s.rx_bytes = counters_.rx_bytes.load();
  s.tx_errors = counters_.tx_errors.load();
  s.tx_too_big = counters_.tx_too_big.load();
  s.rx_unknown_sender = counters_.rx_unknown_sender.load();
  s.rx_malformed = counters_.rx_malformed.load();
  s.rx_unknown_vni = counters_.rx_unknown_vni.load();
  s.rx_spoofed = counters_.rx_spoofed.load();
  return s;
}

void Tunnel::send_to(const sockaddr_in& to, const uint8_t* header, const uint8_t* frame,
                     size_t len) {
  iovec iov[2] = {{const_cast<uint8_t*>(header), kHeaderSize}, {const_cast<uint8_t*>(frame), len}};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr_in*>(&to);
  msg.msg_namelen = sizeof to;
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  if (sendmsg(sock_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    counters_.tx_errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_.tx_packets.fetch_add(1, std::memory_order_relaxed);
  counters_.tx_bytes.fetch_add(kHeaderSize + len, std::memory_order_relaxed);
}

void Tunnel::from_switch(Network& net, const uint8_t* frame, size_t len) {
  if (len < kMinFrame) return;  // the switch never hands these over
  if (len > kMaxTunnelFrame) {
    counters_.tx_too_big.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  std::vector<sockaddr_in> targets;
  {
    std::lock_guard lock(mu_);
    const uint8_t* src = frame + 6;
    if ((src[0] & 1) == 0) {
      if (net.macs.size() >= kMaxLearnedMacs) net.macs.clear();
      net.macs[mac_key(src)] = Where{true, 0, now};
    }
    if (peer_addrs_.empty()) return;
    std::optional<Where> where;
    if ((frame[0] & 1) == 0) {
      auto it = net.macs.find(mac_key(frame));
      if (it != net.macs.end()) {
        if (now - it->second.seen < kMacAge) {
          where = it->second;
        } else {
          net.macs.erase(it);
        }
      }
    }
    if (where && where->local) return;  // delivered by the switch already
    if (where) {
      auto p = peer_addrs_.find(where->peer);
      if (p != peer_addrs_.end()) targets.push_back(p->second);
    }
    if (targets.empty()) {
      for (const auto& [key, addr] : peer_addrs_) targets.push_back(addr);
    }
  }
  uint8_t header[kHeaderSize];
  encode_header(net.vni, header);
  for (const sockaddr_in& to : targets) send_to(to, header, frame, len);
}

void Tunnel::run() {
  pollfd fds[2] = {{sock_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stopping_.load()) {
    int rc = poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (stopping_.load()) return;
    if (fds[0].revents & POLLIN) receive_all();
  }
}

void Tunnel::receive_all() {
  for (int i = 0; i < 64; ++i) {  // bounded, so stop() is seen under a flood
    sockaddr_in from{};
    iovec iov{rx_buf_.data(), rx_buf_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n = recvmsg(sock_, &msg, MSG_DONTWAIT);
    if (n < 0) return;  // EAGAIN: drained (or an ICMP error reported on the socket)
    if (msg.msg_namelen < sizeof from || from.sin_family != AF_INET) {
      counters_.rx_unknown_sender.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const uint64_t sender = endpoint_key(from);
    const uint8_t* data = rx_buf_.data();
    const size_t len = static_cast<size_t>(n);
    SwitchBackend* port = nullptr;
    {
      std::lock_guard lock(mu_);
      if (peer_addrs_.count(sender) == 0) {
        counters_.rx_unknown_sender.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const std::optional<uint32_t> vni = decode_header(data, len);
      const uint8_t* frame = data + kHeaderSize;
      if ((msg.msg_flags & MSG_TRUNC) || !vni || len < kHeaderSize + kMinFrame ||
          (frame[6] & 1) != 0) {
        counters_.rx_malformed.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      auto net = networks_.find(*vni);
      if (net == networks_.end()) {
        counters_.rx_unknown_vni.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      auto& macs = net->second->macs;
      const uint64_t src = mac_key(frame + 6);
      auto it = macs.find(src);
      if (it != macs.end() && it->second.local && now - it->second.seen < kMacAge) {
        counters_.rx_spoofed.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (macs.size() >= kMaxLearnedMacs) macs.clear();
      macs[src] = Where{false, sender, now};
      port = net->second->port.get();
    }
    counters_.rx_packets.fetch_add(1, std::memory_order_relaxed);
    counters_.rx_bytes.fetch_add(len, std::memory_order_relaxed);
    // Into the local switch as a port sends; it never comes back to us (no loops).
    port->send(data + kHeaderSize, len - kHeaderSize);
  }
}

}  // namespace nimbus::backends
