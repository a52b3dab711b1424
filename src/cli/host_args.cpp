#include "cli/host_args.h"

#include <fmt/format.h>

#include "common/size.h"

namespace nimbus::cli {

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

Status check_name(const std::string& name, const std::string& what) {
  if (name.empty()) return Status::error(fmt::format("the {} is empty", what));
  if (name.size() > 63)
    return Status::error(
        fmt::format("{} '{}' is too long ({} characters; at most 63)", what, name, name.size()));
  if (name[0] < 'a' || name[0] > 'z') {
    return Status::error(fmt::format("{} '{}' must start with a lowercase letter", what, name));
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return Status::error(fmt::format("{} '{}' may only contain a-z, 0-9 and '-'", what, name));
    }
  }
  return Status();
}

Result<uint64_t> parse_mib(const std::string& text) {
  uint64_t mib;
  if (all_digits(text)) {
    if (text.size() > 12) return Status::error(fmt::format("size '{}' is too large", text));
    mib = std::stoull(text);
  } else {
    if (text.find_first_of(".,") != std::string::npos) {
      return Status::error(
          fmt::format("size '{}': use whole numbers (e.g. 1536M rather than 1.5G)", text));
    }
    auto bytes = parse_size(text);
    if (!bytes.ok()) return Status::error(bytes.message() + "; a plain number means MiB");
    if (*bytes % (1ull << 20) != 0)
      return Status::error(fmt::format("size '{}' is not a whole number of MiB", text));
    mib = *bytes >> 20;
  }
  if (mib == 0) return Status::error(fmt::format("size '{}' is zero", text));
  return mib;
}

}  // namespace nimbus::cli
