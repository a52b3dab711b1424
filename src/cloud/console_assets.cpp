#include "cloud/console_assets.h"

#include <algorithm>

namespace nimbus::cloud {

std::optional<std::string_view> console_asset(std::string_view name) {
  for (const ConsoleAsset& a : console_asset_table()) {
    if (name == a.name) return std::string_view(reinterpret_cast<const char*>(a.data), a.size);
  }
  return std::nullopt;
}

std::string console_content_type(std::string_view name) {
  struct Type {
    std::string_view ext, type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const Type& t : kTypes) {
    if (name.size() > t.ext.size() && name.substr(name.size() - t.ext.size()) == t.ext)
      return std::string(t.type);
  }
  return "application/octet-stream";
}

}  // namespace nimbus::cloud
