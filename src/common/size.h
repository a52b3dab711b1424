// Parsing of human-written sizes: "256M", "2G", "4096", "512K", "1.5G" is not accepted.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace nimbus {

// Bytes for a size with an optional binary suffix K, M, G or T (KiB... TiB; "MiB",
// "M" and "MB" all mean 2^20). Plain numbers are bytes.
Result<uint64_t> parse_size(const std::string& text);

}  // namespace nimbus
