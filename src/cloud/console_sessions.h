// The web console's sign-in sessions (docs/cloud.md, "Web console"): a user signs in with
// an access key and its secret (the cloud's --credentials, the same keys the EC2 API
// verifies) and gets a random token for the cookie nimbus_console. Sessions live in memory
// (a restart signs everyone out), at most `max_sessions`, each for `ttl` from sign-in;
// expired ones are swept on every sign-in. Tokens are kept as their SHA-256 only.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "cloud/ec2_api.h"
#include "common/status.h"

namespace nimbus::cloud {

class ConsoleSessions {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  struct Session {
    std::string access_key;
    std::chrono::steady_clock::time_point expires;
  };

  ConsoleSessions(ApiCredentials credentials, std::chrono::seconds ttl, size_t max_sessions = 1000,
                  Clock clock = nullptr);

  // Failed sign-ins are throttled: after kFailuresPerKey for one access key, or
  // kFailuresTotal in all, within kFailureWindow, sign-ins (for that key, or all) are refused
  // until the oldest failure leaves the window. Guessing secrets over HTTP is then slow;
  // the price is that someone spamming a key locks it out for a minute.
  static constexpr size_t kFailuresPerKey = 5, kFailuresTotal = 50;
  static constexpr std::chrono::seconds kFailureWindow{60};

  // A new session's token (64 hex digits). Errors: kUnimplemented when the cloud has no
  // credentials at all; kPermissionDenied for an unknown key or a wrong secret (the same
  // message; compared in constant time); kInsufficientCapacity when max_sessions are live;
  // kUnavailable while failed sign-ins are throttled.
  Result<std::string> sign_in(const std::string& access_key, const std::string& secret);
  // The live session of `token`, if any.
  std::optional<Session> find(const std::string& token) const;
  void sign_out(const std::string& token);
  size_t size() const;
  std::chrono::seconds ttl() const { return ttl_; }
  std::chrono::steady_clock::time_point now() const;

  // The token of the request's cookie nimbus_console ("" none or malformed).
  static std::string cookie_token(const std::string& cookie_header);

 private:
  void sweep_locked();

  ApiCredentials credentials_;
  std::chrono::seconds ttl_;
  size_t max_sessions_;
  Clock clock_;
  mutable std::mutex mu_;
  std::map<std::string, Session> sessions_;  // by SHA-256 of the token (hex)
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> failures_;
};

}  // namespace nimbus::cloud
