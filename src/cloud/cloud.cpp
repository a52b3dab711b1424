#include "cloud/cloud.h"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <ctime>
#include <random>

namespace nimbus::cloud {

std::string new_id(std::string_view prefix) {
  unsigned char bytes[9];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    std::random_device rd;  // OpenSSL's generator failed: the kernel's is as good here
    for (unsigned char& b : bytes) b = static_cast<unsigned char>(rd());
  }
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return fmt::format("{}-{}", prefix, hex.substr(0, 17));
}

bool is_id(std::string_view text, std::string_view prefix) {
  if (text.size() != prefix.size() + 1 + 17 || text.substr(0, prefix.size()) != prefix ||
      text[prefix.size()] != '-')
    return false;
  for (char c : text.substr(prefix.size() + 1)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string iso_time_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms));
}

int64_t wall_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Cloud::Cloud(Store& store, CloudOptions options, Clock clock)
    : store_(store), options_(std::move(options)), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
  if (options_.zones.empty()) {
    for (char c : {'a', 'b', 'c'}) options_.zones.push_back(options_.region + c);
  }
  if (options_.instance_types.empty()) options_.instance_types = default_instance_types();
  started_ = clock_();
}

std::chrono::steady_clock::time_point Cloud::now() const { return clock_(); }

Status Cloud::init() {
  if (Status s = start_liveness(); !s.ok()) return s;
  if (Status s = init_networks(); !s.ok()) return s;
  auto groups = store_.list(kSecurityGroupsPrefix);
  if (!groups.ok()) return groups.status();
  for (const KeyValue& kv : *groups) {
    auto g = security_group_from_json(kv.value);
    if (g.ok() && g->name == "default") return Status();
  }
  SecurityGroup g;
  g.id = new_id("sg");
  g.name = "default";
  g.description = "default VPC security group";
  g.owner_id = options_.account_id;
  g.vpc_id = default_vpc_id(options_.region);
  auto r =
      store_.txn({{std::string(kSecurityGroupsPrefix) + g.id, 0}},
                 {{Op::Kind::kPut, std::string(kSecurityGroupsPrefix) + g.id, to_json(g).dump()}});
  if (!r.ok()) return r.status();
  return Status();
}

void Cloud::kick() {
  std::lock_guard<std::mutex> lock(kick_mu_);
  kicked_ = true;
  kick_cv_.notify_all();
}

void Cloud::wait_for_kick(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(kick_mu_);
  kick_cv_.wait_for(lock, timeout, [&] { return kicked_; });
  kicked_ = false;
}

}  // namespace nimbus::cloud
