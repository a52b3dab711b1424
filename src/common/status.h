// Host-facing errors are values: a Status carries a code that says what kind of failure it
// is (so callers and API edges can act on it without parsing text) and a message a user can
// act on. Only the API edges turn codes into HTTP statuses or exit codes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace nimbus {

enum class Code {
  kOk,
  kUnknown,               // an error that has not said what kind it is (Status::error)
  kInvalidArgument,       // the request or input is malformed or out of range
  kNotFound,              // the named thing does not exist
  kConflict,              // exists already, wrong state, in use
  kInsufficientCapacity,  // it would fit by shape, but not on what is free now
  kPermissionDenied,      // not allowed (credentials, file modes, sandbox)
  kUnavailable,           // a peer or service does not answer now; retrying may work
  kDeadlineExceeded,      // took longer than allowed
  kUnimplemented,         // a valid request this build does not do
  kInternal,              // a broken invariant or a host failure the caller cannot fix
};

// The code's name as APIs spell it ("InvalidArgument", ...).
constexpr std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk:
      return "Ok";
    case Code::kUnknown:
      return "Unknown";
    case Code::kInvalidArgument:
      return "InvalidArgument";
    case Code::kNotFound:
      return "NotFound";
    case Code::kConflict:
      return "Conflict";
    case Code::kInsufficientCapacity:
      return "InsufficientCapacity";
    case Code::kPermissionDenied:
      return "PermissionDenied";
    case Code::kUnavailable:
      return "Unavailable";
    case Code::kDeadlineExceeded:
      return "DeadlineExceeded";
    case Code::kUnimplemented:
      return "Unimplemented";
    case Code::kInternal:
      return "Internal";
  }
  return "Unknown";
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {
    if (code_ == Code::kOk) code_ = Code::kUnknown;  // an error is never OK
  }
  static Status error(std::string message) { return Status(Code::kUnknown, std::move(message)); }
  static Status invalid_argument(std::string m) {
    return Status(Code::kInvalidArgument, std::move(m));
  }
  static Status not_found(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
  static Status insufficient_capacity(std::string m) {
    return Status(Code::kInsufficientCapacity, std::move(m));
  }
  static Status permission_denied(std::string m) {
    return Status(Code::kPermissionDenied, std::move(m));
  }
  static Status unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status deadline_exceeded(std::string m) {
    return Status(Code::kDeadlineExceeded, std::move(m));
  }
  static Status unimplemented(std::string m) { return Status(Code::kUnimplemented, std::move(m)); }
  static Status internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // The same error with "CONTEXT: " before its message; the code stays.
  Status with_context(std::string_view context) const {
    if (ok()) return *this;
    return Status(code_, std::string(context) + ": " + message_);
  }
  // The same message under another code (e.g. a lower layer's kUnknown made precise).
  Status with_code(Code code) const { return ok() ? *this : Status(code, message_); }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a value or an error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design
  Result(Status error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  Code code() const { return ok() ? Code::kOk : std::get<1>(v_).code(); }
  const std::string& message() const { return std::get<1>(v_).message(); }
  Status status() const { return ok() ? Status() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace nimbus
