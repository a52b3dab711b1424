// User-mode networking: the guest's frames go to libslirp, a TCP/IP stack in our process
// that turns the guest's connections into ordinary host sockets. No privileges, no host
// configuration. IPv4 only: DHCP, DNS forwarding to the host's resolver, outbound TCP/UDP
// (nothing restricted), ICMP echo where the host allows unprivileged ping, and host port
// forwards. A guest TCP connection to 169.254.169.254:80 reaches the VMM's metadata server
// (options.metadata) and nothing else, by way of metadata_route.h; every other packet to
// 169.254.0.0/16 is dropped.
//
// libslirp is not thread-safe, so one thread owns it: it runs the poll() loop over
// slirp's sockets and our timers, and takes frames from send() through a queue and an
// eventfd. Frames for the guest reach the Receiver on that thread, and set_forwards()
// hands its change to that thread the same way.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backends/net/net_backend.h"

struct Slirp;
struct pollfd;

namespace nimbus::backends {

class SlirpBackend : public NetBackend {
 public:
  // Creates the stack and binds every host forward; a port that cannot be bound is an
  // error naming it ("hostfwd tcp 127.0.0.1:8080: address already in use").
  static Result<std::unique_ptr<SlirpBackend>> create(const UserNetOptions& options);
  ~SlirpBackend() override;
  SlirpBackend(const SlirpBackend&) = delete;
  SlirpBackend& operator=(const SlirpBackend&) = delete;

  Status start(Receiver receiver) override;
  void send(const uint8_t* frame, size_t len) override;
  void resume_receive() override;
  void stop() override;
  // Applies the change as a diff (forward_diff.h) on the slirp thread: the forwards that
  // stay keep their listening sockets and connections. The set is checked first as the
  // configuration's is (config::check_user_forwards: InvalidArgument). If a new forward
  // cannot be listened on (the port in use, not an address of this host, a port below 1024
  // without the privilege) the forwards already changed are put back and the error names
  // it (InvalidArgument, "hostfwd tcp 127.0.0.1:8080: address already in use"). Before
  // start() and after stop() it runs on the caller's thread.
  Status set_forwards(const std::vector<config::PortForward>& forwards) override;
  // The forwards in force.
  std::vector<config::PortForward> forwards();

  // Frames waiting for the guest and frames waiting for slirp are each bounded; beyond
  // that they are dropped (TCP retransmits).
  static constexpr size_t kMaxQueuedFrames = 256;

 private:
  struct Timer {
    void (*cb)(void*);
    void* cb_opaque;
    int64_t expire_ms;  // -1: not armed
  };

  SlirpBackend() = default;
  void run();
  // Runs `task` on the slirp thread and waits for it (on this thread if the loop does not
  // run: then no other thread touches slirp).
  void run_on_loop(const std::function<void()>& task);
  void run_tasks();
  // On the slirp thread: one forward's listening socket.
  Status add_forward(const config::PortForward& f);
  void remove_forward(const config::PortForward& f);
  Status apply_forwards(const std::vector<config::PortForward>& next);
  void wake();
  void deliver(const uint8_t* frame, size_t len);
  void flush_pending();
  int64_t next_timer_ms() const;
  void run_timers();

  // libslirp callbacks (opaque is the SlirpBackend).
  static ssize_t on_send_packet(const void* buf, size_t len, void* opaque);
  static void on_guest_error(const char* msg, void* opaque);
  static int64_t on_clock_get_ns(void* opaque);
  static void* on_timer_new(void (*cb)(void*), void* cb_opaque, void* opaque);
  static void on_timer_free(void* timer, void* opaque);
  static void on_timer_mod(void* timer, int64_t expire_ms, void* opaque);
  static void on_register_poll_fd(int fd, void* opaque);
  static void on_notify(void* opaque);
  static int on_add_poll(int fd, int events, void* opaque);
  static int on_get_revents(int idx, void* opaque);

  Slirp* slirp_ = nullptr;
  int wake_fd_ = -1;  // eventfd
  Receiver receiver_;
  std::thread thread_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> resume_{false};

  std::mutex tx_mu_;                     // guards tx_
  std::deque<std::vector<uint8_t>> tx_;  // guest → slirp

  // Tasks for the slirp thread (run_on_loop), and whether its loop takes them.
  struct Task {
    const std::function<void()>* fn;
    bool done = false;
  };
  std::mutex tasks_mu_;
  std::condition_variable tasks_cv_;
  std::deque<Task*> tasks_;
  bool loop_running_ = false;

  // Set by create(): the metadata service (null: none) and its address inside the network.
  std::shared_ptr<MetadataLink> metadata_;
  uint32_t metadata_internal_ = 0;

  // Owned by the slirp thread (and by create() before it starts).
  config::UserNetwork net_;
  std::vector<config::PortForward> forwards_;    // in force
  std::deque<std::vector<uint8_t>> rx_pending_;  // slirp → guest, guest had no buffer
  std::list<Timer> timers_;
  std::vector<pollfd>* pollfds_ = nullptr;  // valid during one loop iteration
};

}  // namespace nimbus::backends
