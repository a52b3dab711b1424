// The web console's per-instance metrics (GET /console/api/instances/ID/metrics): a
// sampler that asks each alive host for its VMs (nimbusd's GET /v1/vms, whose "usage"
// holds each VM's CPU-seconds and resident memory) every `interval`, and keeps the last
// `keep` samples (an hour at 5 s) of each running instance. CPU % is the CPU-seconds'
// delta over the wall time between two samples (100 per busy vCPU).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cloud/cloud.h"
#include "cloud/reconciler.h"

namespace nimbus::cloud {

class ConsoleMetrics {
 public:
  struct Sample {
    int64_t t = 0;  // unix seconds
    double cpu_pct = 0, memory_mib = 0;
  };

  ConsoleMetrics(Cloud& cloud, HostDriver& driver,
                 std::chrono::seconds interval = std::chrono::seconds(5), size_t keep = 720);
  ~ConsoleMetrics();  // stops

  void start();  // the sampling thread (start twice is once)
  void stop();
  // One pass over every alive host (the thread's work; tests call it).
  void sample_now();
  // One host's GET /v1/vms list ({"vms": [...]} or the array) read at unix time t_ms: a
  // sample for every running instance VM with usage seen before (the first sets the base).
  void ingest(const nlohmann::json& vms, int64_t t_ms);
  std::vector<Sample> samples(const std::string& instance) const;
  int interval_s() const { return static_cast<int>(interval_.count()); }

 private:
  struct Series {
    std::deque<Sample> samples;
    double last_cpu_seconds = -1;
    int64_t last_t_ms = 0;
  };
  void loop();

  Cloud& cloud_;
  HostDriver& driver_;
  std::chrono::seconds interval_;
  size_t keep_;
  mutable std::mutex mu_;  // series_, stopping_
  std::condition_variable cv_;
  std::map<std::string, Series> series_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace nimbus::cloud
