// The result of a control-plane operation as the EC2 API reports it: a value, or an
// Ec2Error (EC2's code, message and HTTP status). The cloud's operations speak EC2's error
// vocabulary (InvalidInstanceID.NotFound, IncorrectInstanceState, ...) directly, because
// that is what their callers, the Query API and the console, show; a Status from a lower
// layer becomes one with `from_status`.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "cloud/ec2_error.h"
#include "common/status.h"

namespace nimbus::cloud {

template <typename T>
class [[nodiscard]] Ec2Result {
 public:
  Ec2Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Ec2Result(Ec2Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }
  const Ec2Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Ec2Error> v_;
};

inline Ec2Error ec2_error(std::string code, std::string message, int http_status = 400) {
  Ec2Error e;
  e.http_status = http_status;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

// A lower layer's failure: the store or a host did not answer (Unavailable, 503), or an
// internal error (InternalError, 500). Request errors never come this way.
inline Ec2Error from_status(const Status& s) {
  if (s.code() == Code::kUnavailable || s.code() == Code::kDeadlineExceeded)
    return ec2_error("Unavailable", s.message(), 503);
  return ec2_error("InternalError", s.message(), 500);
}

}  // namespace nimbus::cloud
