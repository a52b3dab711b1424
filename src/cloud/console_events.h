// The web console's Server-Sent Events (GET /console/api/events): each stream gets
// "event: instances" + "data: <the /console/api/instances JSON>" on connect and whenever
// it changes, and ": keepalive" every `keepalive`. One poller thread (running while any
// stream is open) takes the snapshot every `poll` and wakes the streams when it changed;
// each stream runs on its own connection's thread (the server's upgrade callback), so a
// slow reader holds only its own. At most `max_streams` at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace nimbus::cloud {

class ConsoleEvents {
 public:
  // The current data; `fingerprint` is what decides "changed" (e.g. without uptimes).
  struct Snapshot {
    std::string data, fingerprint;
    bool ok = false;  // false: the store could not be read (nothing is sent)
  };
  using Source = std::function<Snapshot()>;

  ConsoleEvents(Source source, size_t max_streams = 100,
                std::chrono::milliseconds poll = std::chrono::milliseconds(1000),
                std::chrono::milliseconds keepalive = std::chrono::seconds(15));
  ~ConsoleEvents();  // ends every stream and waits for them

  // Reserves a stream; false when max_streams are open (the caller answers 503). Each
  // true is followed by exactly one release(), after run() if it ran.
  bool reserve();
  void release();
  // Writes the stream to `fd` (the HTTP head is already written) until `alive` says no (the
  // session ended), the peer closed or stopped reading for 10 s, or stop().
  void run(int fd, const std::function<bool()>& alive);
  void stop();
  size_t streams() const;

 private:
  void poll_loop();
  void take_snapshot();

  Source source_;
  size_t max_streams_;
  std::chrono::milliseconds poll_, keepalive_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // a new version, a stream ended, stop
  size_t streams_ = 0;
  bool stopping_ = false;
  uint64_t version_ = 0;
  std::string data_, fingerprint_;
  std::thread poller_;
};

}  // namespace nimbus::cloud
