#include "cloud/console_metrics.h"

#include <spdlog/spdlog.h>

namespace nimbus::cloud {

ConsoleMetrics::ConsoleMetrics(Cloud& cloud, HostDriver& driver, std::chrono::seconds interval,
                               size_t keep)
    : cloud_(cloud), driver_(driver), interval_(interval), keep_(keep) {}

ConsoleMetrics::~ConsoleMetrics() { stop(); }

void ConsoleMetrics::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void ConsoleMetrics::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void ConsoleMetrics::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    sample_now();
    lock.lock();
    cv_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

void ConsoleMetrics::sample_now() {
  auto hosts = cloud_.hosts();
  if (!hosts.ok()) return;
  for (const HostView& h : *hosts) {
    if (!h.alive) continue;
    auto vms = driver_.call(h.record, "GET", "/v1/vms", std::nullopt, 3000);
    if (!vms.ok()) {
      spdlog::debug("console metrics: host {}: {}", h.record.id, vms.message());
      continue;
    }
    ingest(*vms, wall_ms_now());
  }
  // Instances not seen for an hour (terminated, gone) are forgotten.
  const int64_t cutoff = wall_ms_now() - 3600 * 1000;
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(series_, [&](const auto& kv) { return kv.second.last_t_ms < cutoff; });
}

void ConsoleMetrics::ingest(const nlohmann::json& body, int64_t t_ms) {
  const nlohmann::json* list = &body;
  if (body.is_object()) {
    auto it = body.find("vms");
    if (it == body.end()) return;
    list = &*it;
  }
  if (!list->is_array()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const nlohmann::json& vm : *list) {
    if (!vm.is_object()) continue;
    auto name = vm.find("name"), state = vm.find("state"), usage = vm.find("usage");
    if (name == vm.end() || !name->is_string() || !is_id(name->get<std::string>(), "i")) continue;
    if (state == vm.end() || !state->is_string() || *state != "running") continue;
    if (usage == vm.end() || !usage->is_object()) continue;
    auto cpu = usage->find("cpu_seconds"), mem = usage->find("memory_mib");
    if (cpu == usage->end() || !cpu->is_number() || mem == usage->end() || !mem->is_number())
      continue;
    const double cpu_s = cpu->get<double>(), mem_mib = mem->get<double>();
    if (!(cpu_s >= 0) || !(mem_mib >= 0)) continue;  // NaN, negative: garbage
    Series& s = series_[name->get<std::string>()];
    const int64_t dt_ms = t_ms - s.last_t_ms;
    if (s.last_cpu_seconds >= 0 && cpu_s >= s.last_cpu_seconds && dt_ms >= 500) {
      Sample x;
      x.t = t_ms / 1000;
      x.cpu_pct = (cpu_s - s.last_cpu_seconds) * 100000.0 / static_cast<double>(dt_ms);
      x.memory_mib = mem_mib;
      s.samples.push_back(x);
      while (s.samples.size() > keep_) s.samples.pop_front();
    }
    if (dt_ms >= 500 || s.last_cpu_seconds < 0 || cpu_s < s.last_cpu_seconds) {
      s.last_cpu_seconds = cpu_s;  // a restarted VM counts from 0 again
      s.last_t_ms = t_ms;
    }
  }
}

std::vector<ConsoleMetrics::Sample> ConsoleMetrics::samples(const std::string& instance) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(instance);
  if (it == series_.end()) return {};
  return {it->second.samples.begin(), it->second.samples.end()};
}

}  // namespace nimbus::cloud
