#include "cloud/console_sessions.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>

namespace nimbus::cloud {

namespace {

std::string hex(const unsigned char* p, size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", p[i]);
  return out;
}

std::string sha256_hex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  return hex(d, sizeof d);
}

// Constant time in the contents (the lengths are compared as digests, so they leak
// nothing either).
bool secret_equal(const std::string& a, const std::string& b) {
  unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

bool is_token(std::string_view t) {
  return t.size() == 64 && std::all_of(t.begin(), t.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

ConsoleSessions::ConsoleSessions(ApiCredentials credentials, std::chrono::seconds ttl,
                                 size_t max_sessions, Clock clock)
    : credentials_(std::move(credentials)),
      ttl_(ttl),
      max_sessions_(max_sessions),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

std::chrono::steady_clock::time_point ConsoleSessions::now() const { return clock_(); }

Result<std::string> ConsoleSessions::sign_in(const std::string& access_key,
                                             const std::string& secret) {
  if (credentials_.keys.empty())
    return Status::unimplemented(
        "the console needs credentials: start nimbus-cloud with --credentials FILE");
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = clock_();
    while (!failures_.empty() && now - failures_.front().first >= kFailureWindow)
      failures_.pop_front();
    const size_t for_key = static_cast<size_t>(std::count_if(
        failures_.begin(), failures_.end(), [&](const auto& f) { return f.second == access_key; }));
    if (for_key >= kFailuresPerKey || failures_.size() >= kFailuresTotal)
      return Status::unavailable("too many failed sign-ins: try again in a minute");
  }
  // Every key is compared (no early exit), and an unknown key still compares a secret.
  bool ok = false;
  static const std::string kNoSecret = "no such key: compare anyway";
  bool known = false;
  for (const auto& [key, value] : credentials_.keys) {
    const bool this_key = secret_equal(key, access_key);
    known |= this_key;
    ok |= this_key & secret_equal(value, secret);
  }
  if (!known) (void)secret_equal(kNoSecret, secret);
  if (!ok) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.emplace_back(clock_(), access_key);
    return Status::permission_denied("wrong access key or secret");
  }
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return Status::internal("no random bytes");
  std::string token = hex(bytes, sizeof bytes);
  std::lock_guard<std::mutex> lock(mu_);
  sweep_locked();
  if (sessions_.size() >= max_sessions_)
    return Status::insufficient_capacity(
        fmt::format("too many console sessions ({}); try again later", max_sessions_));
  sessions_[sha256_hex(token)] = Session{access_key, clock_() + ttl_};
  return token;
}

std::optional<ConsoleSessions::Session> ConsoleSessions::find(const std::string& token) const {
  if (!is_token(token)) return std::nullopt;
  const std::string key = sha256_hex(token);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(key);
  if (it == sessions_.end() || clock_() >= it->second.expires) return std::nullopt;
  return it->second;
}

void ConsoleSessions::sign_out(const std::string& token) {
  if (!is_token(token)) return;
  const std::string key = sha256_hex(token);
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(key);
}

size_t ConsoleSessions::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

void ConsoleSessions::sweep_locked() {
  const auto now = clock_();
  std::erase_if(sessions_, [&](const auto& kv) { return now >= kv.second.expires; });
}

std::string ConsoleSessions::cookie_token(const std::string& header) {
  // Cookie: a=b; nimbus_console=TOKEN; c=d
  constexpr std::string_view kName = "nimbus_console=";
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    std::string_view part(header.data() + pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (part.substr(0, kName.size()) == kName) {
      std::string_view v = part.substr(kName.size());
      if (is_token(v)) return std::string(v);
    }
    pos = end + 1;
  }
  return "";
}

}  // namespace nimbus::cloud
