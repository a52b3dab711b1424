#include "backends/net/slirp_backend.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <libslirp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "backends/net/forward_diff.h"
#include "backends/net/metadata_route.h"

namespace nimbus::backends {

namespace {

in_addr to_in_addr(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  return a;
}

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

short to_poll_events(int slirp_events) {
  short e = 0;
  if (slirp_events & SLIRP_POLL_IN) e |= POLLIN;
  if (slirp_events & SLIRP_POLL_OUT) e |= POLLOUT;
  if (slirp_events & SLIRP_POLL_PRI) e |= POLLPRI;
  if (slirp_events & SLIRP_POLL_ERR) e |= POLLERR;
  if (slirp_events & SLIRP_POLL_HUP) e |= POLLHUP;
  return e;
}

int to_slirp_events(short revents) {
  int e = 0;
  if (revents & POLLIN) e |= SLIRP_POLL_IN;
  if (revents & POLLOUT) e |= SLIRP_POLL_OUT;
  if (revents & POLLPRI) e |= SLIRP_POLL_PRI;
  if (revents & POLLERR) e |= SLIRP_POLL_ERR;
  if (revents & POLLHUP) e |= SLIRP_POLL_HUP;
  return e;
}

// Ethernet header plus the largest IPv4 packet: anything longer is not a frame.
constexpr size_t kMaxFrame = 14 + 65535;
constexpr size_t kMinFrame = 14;

}  // namespace

Result<std::unique_ptr<SlirpBackend>> SlirpBackend::create(const UserNetOptions& options) {
  std::unique_ptr<SlirpBackend> backend(new SlirpBackend());
  backend->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (backend->wake_fd_ < 0) {
    return Status::error(std::string("user network: eventfd: ") + std::strerror(errno));
  }

  uint32_t mask = options.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - options.prefix_len);
  SlirpConfig cfg{};
  cfg.version = 1;
  cfg.restricted = 0;
  cfg.in_enabled = true;
  cfg.vnetwork = to_in_addr(options.network);
  cfg.vnetmask = to_in_addr(mask);
  cfg.vhost = to_in_addr(options.network | 2);
  cfg.in6_enabled = false;
  cfg.vdhcp_start = to_in_addr(options.network | 15);
  cfg.vnameserver = to_in_addr(options.network | 3);
  cfg.if_mtu = 0;  // libslirp's defaults (1500)
  cfg.if_mru = 0;
  cfg.disable_host_loopback = false;
  cfg.enable_emu = false;  // libslirp warns its protocol emulation (FTP, IRC...) is unsafe

  static const SlirpCb callbacks = {
      .send_packet = &SlirpBackend::on_send_packet,
      .guest_error = &SlirpBackend::on_guest_error,
      .clock_get_ns = &SlirpBackend::on_clock_get_ns,
      .timer_new = &SlirpBackend::on_timer_new,
      .timer_free = &SlirpBackend::on_timer_free,
      .timer_mod = &SlirpBackend::on_timer_mod,
      .register_poll_fd = &SlirpBackend::on_register_poll_fd,
      .unregister_poll_fd = &SlirpBackend::on_register_poll_fd,
      .notify = &SlirpBackend::on_notify,
      .init_completed = nullptr,
      .timer_new_opaque = nullptr,
  };
  backend->slirp_ = slirp_new(&cfg, &callbacks, backend.get());
  if (backend->slirp_ == nullptr) return Status::error("user network: libslirp failed to start");

  backend->net_ = config::UserNetwork{options.network, options.prefix_len};
  backend->metadata_internal_ = metadata_internal_address(backend->net_);
  if (options.metadata != nullptr) {
    // A new connection to the VMM's own socket per guest connection (slirp_add_guestfwd's
    // callbacks cannot tell two connections to one address and port apart).
    in_addr internal = to_in_addr(backend->metadata_internal_);
    if (slirp_add_unix(backend->slirp_, options.metadata->socket_path.c_str(), &internal,
                       kMetadataPort) < 0) {
      return Status::error("user network: cannot route the metadata service to '" +
                           options.metadata->socket_path + "'");
    }
    backend->metadata_ = options.metadata;
  }
  for (const config::PortForward& f : options.forwards) {
    if (Status s = backend->add_forward(f); !s.ok()) return s;
    backend->forwards_.push_back(f);
  }
  return backend;
}

SlirpBackend::~SlirpBackend() {
  stop();
  if (slirp_ != nullptr) slirp_cleanup(slirp_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status SlirpBackend::start(Receiver receiver) {
  if (started_) return Status::error("user network: already started");
  started_ = true;
  receiver_ = std::move(receiver);
  {
    std::lock_guard lock(tasks_mu_);
    loop_running_ = true;
  }
  thread_ = std::thread([this] { run(); });
  return Status();
}

Status SlirpBackend::add_forward(const config::PortForward& f) {
  const bool udp = f.protocol == "udp";
  const uint32_t host = config::host_ipv4(f);
  errno = 0;
  const int rc = slirp_add_hostfwd(slirp_, udp ? 1 : 0, to_in_addr(host), f.host_port,
                                   to_in_addr(config::guest_ipv4(f, net_)), f.guest_port);
  if (rc >= 0) return Status();
  const int err = errno;
  std::string what = std::string("hostfwd ") + (udp ? "udp " : "tcp ") + config::format_ipv4(host) +
                     ":" + std::to_string(f.host_port);
  std::string why = err == EADDRINUSE ? "address already in use"
                    : err != 0        ? std::strerror(err)
                                      : "cannot listen on it";
  return Status::invalid_argument(what + ": " + why);
}

void SlirpBackend::remove_forward(const config::PortForward& f) {
  // Closes the listening socket only; connections accepted through it go on.
  slirp_remove_hostfwd(slirp_, f.protocol == "udp" ? 1 : 0, to_in_addr(config::host_ipv4(f)),
                       f.host_port);
}

Status SlirpBackend::apply_forwards(const std::vector<config::PortForward>& next) {
  const ForwardChanges changes = diff_forwards(forwards_, next, net_);
  // Removed first: a forward whose guest side changed listens on the same port again.
  for (const config::PortForward& f : changes.removed) remove_forward(f);
  std::vector<config::PortForward> added;
  for (const config::PortForward& f : changes.added) {
    Status s = add_forward(f);
    if (s.ok()) {
      added.push_back(f);
      continue;
    }
    for (const config::PortForward& g : added) remove_forward(g);
    std::string lost;
    for (const config::PortForward& g : changes.removed) {
      // Its port was free a moment ago; only another program racing for it keeps it.
      if (Status r = add_forward(g); !r.ok()) {
        lost += "; the previous forward " + config::format_forward(g) +
                " could not be restored: " + r.message();
        forwards_.erase(std::find(forwards_.begin(), forwards_.end(), g));
      }
    }
    return lost.empty() ? s : Status::invalid_argument(s.message() + lost);
  }
  forwards_ = next;
  return Status();
}

Status SlirpBackend::set_forwards(const std::vector<config::PortForward>& forwards) {
  config::NicSpec nic;
  nic.network = fmt::format("{}/{}", config::format_ipv4(net_.network), net_.prefix_len);
  nic.forwards = forwards;
  if (Status s = config::check_user_forwards(nic); !s.ok())
    return s.with_code(Code::kInvalidArgument);
  Status result;
  run_on_loop([&] { result = apply_forwards(forwards); });
  return result;
}

std::vector<config::PortForward> SlirpBackend::forwards() {
  std::vector<config::PortForward> out;
  run_on_loop([&] { out = forwards_; });
  return out;
}

void SlirpBackend::run_on_loop(const std::function<void()>& task) {
  std::unique_lock lock(tasks_mu_);
  if (!loop_running_) {
    // The loop starts (and takes tasks) only with tasks_mu_, which we hold throughout.
    task();
    return;
  }
  Task t{&task};
  tasks_.push_back(&t);
  lock.unlock();
  wake();
  lock.lock();
  tasks_cv_.wait(lock, [&t] { return t.done; });
}

void SlirpBackend::run_tasks() {
  std::deque<Task*> batch;
  {
    std::lock_guard lock(tasks_mu_);
    batch.swap(tasks_);
  }
  if (batch.empty()) return;
  for (Task* t : batch) (*t->fn)();
  std::lock_guard lock(tasks_mu_);
  for (Task* t : batch) t->done = true;
  tasks_cv_.notify_all();
}

void SlirpBackend::send(const uint8_t* frame, size_t len) {
  if (len < kMinFrame || len > kMaxFrame) return;
  {
    std::lock_guard lock(tx_mu_);
    if (tx_.size() >= kMaxQueuedFrames) return;
    tx_.emplace_back(frame, frame + len);
  }
  wake();
}

void SlirpBackend::resume_receive() {
  resume_.store(true);
  wake();
}

void SlirpBackend::stop() {
  stopping_.store(true);
  wake();
  if (thread_.joinable()) thread_.join();
}

void SlirpBackend::wake() {
  uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the thread will wake anyway.
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void SlirpBackend::run() {
  std::vector<pollfd> fds;
  std::deque<std::vector<uint8_t>> batch;
  while (!stopping_.load()) {
    {
      std::lock_guard lock(tx_mu_);
      batch.swap(tx_);
    }
    const bool serving = metadata_ != nullptr && metadata_->serving.load();
    for (auto& frame : batch) {
      if (route_from_guest(frame.data(), frame.size(), metadata_internal_, serving) ==
          FrameVerdict::kDrop) {
        continue;
      }
      slirp_input(slirp_, frame.data(), static_cast<int>(frame.size()));
    }
    batch.clear();
    if (resume_.exchange(false)) flush_pending();
    run_tasks();

    // Our timers bound the sleep; slirp_pollfds_fill lowers it further for TCP timers.
    uint32_t timeout = UINT32_MAX;
    int64_t next = next_timer_ms();
    if (next >= 0) {
      int64_t wait = next - monotonic_ns() / 1'000'000;
      timeout = static_cast<uint32_t>(std::clamp<int64_t>(wait, 0, 1000));
    }
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    pollfds_ = &fds;
    slirp_pollfds_fill(slirp_, &timeout, &SlirpBackend::on_add_poll, this);
    int rc = poll(fds.data(), fds.size(), timeout == UINT32_MAX ? -1 : static_cast<int>(timeout));
    if (rc > 0 && (fds[0].revents & POLLIN)) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof count);
    }
    slirp_pollfds_poll(slirp_, rc < 0 ? 1 : 0, &SlirpBackend::on_get_revents, this);
    pollfds_ = nullptr;
    run_timers();
  }
  // Tasks queued before the loop ended still run here; later ones run on their caller's
  // thread.
  {
    std::lock_guard lock(tasks_mu_);
    loop_running_ = false;
  }
  run_tasks();
}

void SlirpBackend::deliver(const uint8_t* frame, size_t len) {
  // Keep order: once something waits, everything after it waits too.
  if (rx_pending_.empty() && receiver_(frame, len)) return;
  if (rx_pending_.size() < kMaxQueuedFrames) rx_pending_.emplace_back(frame, frame + len);
}

void SlirpBackend::flush_pending() {
  while (!rx_pending_.empty()) {
    const auto& frame = rx_pending_.front();
    if (!receiver_(frame.data(), frame.size())) return;
    rx_pending_.pop_front();
  }
}

int64_t SlirpBackend::next_timer_ms() const {
  int64_t next = -1;
  for (const Timer& t : timers_) {
    if (t.expire_ms >= 0 && (next < 0 || t.expire_ms < next)) next = t.expire_ms;
  }
  return next;
}

void SlirpBackend::run_timers() {
  int64_t now_ms = monotonic_ns() / 1'000'000;
  // A callback may re-arm or free timers, so look up the next due one afresh each time.
  while (true) {
    Timer* due = nullptr;
    for (Timer& t : timers_) {
      if (t.expire_ms >= 0 && t.expire_ms <= now_ms) {
        due = &t;
        break;
      }
    }
    if (due == nullptr) return;
    due->expire_ms = -1;
    due->cb(due->cb_opaque);
  }
}

ssize_t SlirpBackend::on_send_packet(const void* buf, size_t len, void* opaque) {
  auto* self = static_cast<SlirpBackend*>(opaque);
  const auto* frame = static_cast<const uint8_t*>(buf);
  if (is_from_internal(frame, len, self->metadata_internal_)) {
    // The metadata service's packets: shown as 169.254.169.254's (a copy: slirp's is const).
    std::vector<uint8_t> copy(frame, frame + len);
    const uint8_t hops = self->metadata_ != nullptr ? self->metadata_->hop_limit.load() : 1;
    if (route_to_guest(copy.data(), copy.size(), self->metadata_internal_, hops) !=
        FrameVerdict::kDrop) {
      self->deliver(copy.data(), copy.size());
    }
    return static_cast<ssize_t>(len);
  }
  self->deliver(frame, len);
  return static_cast<ssize_t>(len);
}

void SlirpBackend::on_guest_error(const char* msg, void* opaque) {
  std::fprintf(stderr, "nimbus: user network: guest error: %s\n", msg);
}

int64_t SlirpBackend::on_clock_get_ns(void* opaque) { return monotonic_ns(); }

void* SlirpBackend::on_timer_new(void (*cb)(void*), void* cb_opaque, void* opaque) {
  auto* self = static_cast<SlirpBackend*>(opaque);
  self->timers_.push_back(Timer{cb, cb_opaque, -1});
  return &self->timers_.back();
}

void SlirpBackend::on_timer_free(void* timer, void* opaque) {
  auto* self = static_cast<SlirpBackend*>(opaque);
  self->timers_.remove_if([timer](const Timer& t) { return &t == timer; });
}

void SlirpBackend::on_timer_mod(void* timer, int64_t expire_ms, void* opaque) {
  static_cast<Timer*>(timer)->expire_ms = expire_ms < 0 ? 0 : expire_ms;
}

// We rebuild the poll set from slirp_pollfds_fill on every iteration, so there is no
// persistent registration to keep.
void SlirpBackend::on_register_poll_fd(int fd, void* opaque) {}

void SlirpBackend::on_notify(void* opaque) { static_cast<SlirpBackend*>(opaque)->wake(); }

int SlirpBackend::on_add_poll(int fd, int events, void* opaque) {
  auto* fds = static_cast<SlirpBackend*>(opaque)->pollfds_;
  fds->push_back({fd, to_poll_events(events), 0});
  return static_cast<int>(fds->size() - 1);
}

int SlirpBackend::on_get_revents(int idx, void* opaque) {
  auto* fds = static_cast<SlirpBackend*>(opaque)->pollfds_;
  if (idx < 0 || static_cast<size_t>(idx) >= fds->size()) return 0;
  return to_slirp_events((*fds)[idx].revents);
}

}  // namespace nimbus::backends
