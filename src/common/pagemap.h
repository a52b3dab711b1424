// Which pages of a private anonymous mapping were ever touched, from /proc/self/pagemap
// (present or swapped). An untouched page reads as zeros, so a scan for non-zero pages can
// skip it without reading it: on some kernels even a read fault allocates a real page,
// which would make a snapshot of a mostly idle guest cost the whole of its RAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace nimbus {

// One flag per 4 KiB page of [base, base + len): true if the page may hold data.
// nullopt if pagemap cannot be read (then every page must be assumed touched).
// `base` must be page-aligned.
std::optional<std::vector<bool>> touched_pages(const void* base, size_t len);

}  // namespace nimbus
