// The web console's files (web/console/: index.html, app.js, app.css, vendor/...), embedded
// into the binary at build time (cmake/embed_files.cmake generates the table), so that
// nimbus-cloud serves them from no path on disk.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace nimbus::cloud {

struct ConsoleAsset {
  const char* name;  // relative to web/console/, e.g. "vendor/xterm.js"
  const unsigned char* data;
  size_t size;
};

// Every embedded file, sorted by name (generated: build/generated/console_assets_data.cpp).
std::span<const ConsoleAsset> console_asset_table();

// The file named `name` (relative, as in the table), or nullopt.
std::optional<std::string_view> console_asset(std::string_view name);

// The Content-Type for a file name, by its extension (application/octet-stream otherwise).
std::string console_content_type(std::string_view name);

}  // namespace nimbus::cloud
