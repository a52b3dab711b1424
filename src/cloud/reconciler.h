// The reconciler: makes each host match the instance records. API calls only write what
// the owner wants (desired state, security group rules, reboots) and return at once, as
// EC2 does; this loop creates, starts, stops, resizes, reboots and deletes the VMs through
// each host's nimbusd API, and moves the records through EC2's states as the hosts report
// (pending -> running only once the guest said ready). Level-triggered: every pass looks
// at every instance, so a control plane killed at any moment picks up where it was.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cloud/cloud.h"

namespace nimbus::cloud {

// The seam to the hosts: one call of a host's nimbusd API (docs/nimbusd.md).
class HostDriver {
 public:
  virtual ~HostDriver() = default;
  virtual Result<nlohmann::json> call(const HostRecord& host, const std::string& method,
                                      const std::string& path,
                                      const std::optional<nlohmann::json>& body,
                                      int timeout_ms) = 0;
  // The bytes of a GET (an image's file: nimbusd's GET /v1/images/NAME/files/FILE); a body
  // over `max_bytes` is an error.
  virtual Result<std::string> fetch_file(const HostRecord& host, const std::string& path,
                                         uint64_t max_bytes, int timeout_ms) = 0;
};

// The real one: HTTP with the host's bearer token (host/host_api_client.h).
class NimbusdDriver : public HostDriver {
 public:
  Result<nlohmann::json> call(const HostRecord& host, const std::string& method,
                              const std::string& path, const std::optional<nlohmann::json>& body,
                              int timeout_ms) override;
  // custom_images.cpp
  Result<std::string> fetch_file(const HostRecord& host, const std::string& path,
                                 uint64_t max_bytes, int timeout_ms) override;
};

class Reconciler {
 public:
  // `image_source`: the URL hosts fetch image files from, e.g.
  // http://127.0.0.1:8773/nimbus/v1/images/ (the image id and file name follow).
  Reconciler(Cloud& cloud, HostDriver& driver, std::string image_source, unsigned workers = 8);
  ~Reconciler();

  // start() after stop() runs again (a replica that leads again); start() twice is once.
  void start();
  void stop();
  // One pass over every instance, each acted on synchronously (tests).
  void pass_now();

 private:
  void loop();
  void worker();
  // Whether the instance needs a call to its host now (from the records and the host's
  // last heartbeat alone; no I/O).
  bool needs_work(const InstanceRecord& inst);
  void act(const std::string& id);
  Status ensure_image(const HostRecord& host, const std::string& image_id);
  // An instance with a move (move_to): claims the target, has the source host migrate
  // the VM, records the outcome (docs/cloud.md, "Moves and drains").
  void act_move(InstanceRecord inst, const HostRecord& source);
  // Another alive host whose last heartbeat lists the VM `id` running ("" none).
  std::string host_reporting(const std::string& id, const std::string& except);
  void purge_terminated(const std::vector<InstanceRecord>& all);

  Cloud& cloud_;
  HostDriver& driver_;
  std::string image_source_;
  unsigned workers_;
  std::atomic<bool> stop_{false};
  std::thread loop_thread_;
  std::vector<std::thread> worker_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> queued_;  // queued or being acted on
  std::map<std::string, std::chrono::steady_clock::time_point> retry_after_;
  std::map<std::string, std::string> last_error_;   // logged once per change
  std::map<std::string, unsigned> start_attempts_;  // starts of a VM not yet ready
  std::map<std::string, std::string> moving_from_;  // source host -> the instance moving off it
};

}  // namespace nimbus::cloud
