// A worker thread with a FIFO of tasks. Virtio devices run their request processing here
// (disk I/O, packet TX, RNG fills) so that a vCPU's QueueNotify write returns at once:
// "disk I/O must not stall the vCPUs".
//
// Threading: post() and wait_idle() may be called from any thread except the worker
// itself (wait_idle from a task would deadlock). Tasks run one at a time, in post order.
// The destructor discards tasks that have not started, waits for the running one, and
// joins: an object that posts tasks capturing `this` must destroy its IoThread first
// (declare it as its last member).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace nimbus::devices {

class IoThread {
 public:
  explicit IoThread(std::string name = "virtio-io");
  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  void post(std::function<void()> task);
  // Blocks until every task posted before the call has finished.
  void wait_idle();
  // Tasks posted and not yet started.
  size_t backlog();
  // What the destructor does, callable earlier: discards pending tasks, waits for the
  // running one, joins. Later posts are ignored. Idempotent.
  void stop();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;       // work arrived or stopping
  std::condition_variable idle_cv_;  // queue drained
  std::deque<std::function<void()>> tasks_;
  bool busy_ = false;
  bool stopping_ = false;
  std::string name_;
  std::thread thread_;  // last: started after everything above is initialised
};

}  // namespace nimbus::devices
