#include "common/size.h"

#include <cctype>

namespace nimbus {

Result<uint64_t> parse_size(const std::string& text) {
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return Status::error("size '" + text + "' is too large");
    value = value * 10 + digit;
    i++;
  }
  if (i == 0) return Status::error("'" + text + "' is not a size (examples: 256M, 2G, 1048576)");
  std::string suffix;
  for (; i < text.size(); i++)
    suffix += static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
  unsigned shift;
  if (suffix.empty() || suffix == "B") {
    shift = 0;
  } else if (suffix == "K" || suffix == "KB" || suffix == "KIB") {
    shift = 10;
  } else if (suffix == "M" || suffix == "MB" || suffix == "MIB") {
    shift = 20;
  } else if (suffix == "G" || suffix == "GB" || suffix == "GIB") {
    shift = 30;
  } else if (suffix == "T" || suffix == "TB" || suffix == "TIB") {
    shift = 40;
  } else {
    return Status::error("'" + text + "' is not a size: unknown suffix (use K, M, G or T)");
  }
  if (shift != 0 && value > (UINT64_MAX >> shift))
    return Status::error("size '" + text + "' is too large");
  return value << shift;
}

}  // namespace nimbus
