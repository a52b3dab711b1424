#include "cloud/regions.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace nimbus::cloud {

namespace {

constexpr size_t kMaxRegions = 200;
constexpr size_t kMaxEndpoint = 256;
constexpr size_t kMaxFileBytes = 1 << 20;

// For messages: at most 80 characters, control characters shown as '?'.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

}  // namespace

Result<std::string> check_region_endpoint(std::string_view e) {
  if (e.size() > kMaxEndpoint)
    return Status::invalid_argument(
        fmt::format("endpoint longer than {} characters", kMaxEndpoint));
  for (char c : e) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return Status::invalid_argument(
          fmt::format("endpoint '{}' has a space or control character", shown(e)));
  }
  std::string_view rest;
  if (e.substr(0, 7) == "http://") {
    rest = e.substr(7);
  } else if (e.substr(0, 8) == "https://") {
    rest = e.substr(8);
  } else {
    return Status::invalid_argument(
        fmt::format("endpoint '{}' is not an http:// or https:// URL", shown(e)));
  }
  const size_t host_end = rest.find_first_of("/?#");
  if (rest.substr(0, host_end).empty() || rest.substr(0, host_end).find('@') != std::string::npos)
    return Status::invalid_argument(fmt::format("endpoint '{}' names no host", shown(e)));
  std::string out(e);
  if (out.back() == '/') out.pop_back();
  return out;
}

namespace {

struct Builder {
  std::vector<RegionEndpoint> list;
  std::set<std::string> names;

  Status add(const std::string& where, const std::string& name, const std::string& endpoint) {
    if (!valid_region_name(name))
      return Status::invalid_argument(fmt::format(
          "{}: '{}' is not a region name (a-z, 0-9 and '-', at most 64, starting with a letter)",
          where, shown(name)));
    if (!names.insert(name).second)
      return Status::invalid_argument(fmt::format("{}: region '{}' is listed twice", where, name));
    auto e = check_region_endpoint(endpoint);
    if (!e.ok()) return Status::invalid_argument(fmt::format("{}: {}", where, e.message()));
    if (list.size() == kMaxRegions)
      return Status::invalid_argument(fmt::format("more than {} regions", kMaxRegions));
    list.push_back({name, *e});
    return {};
  }

  Result<std::vector<RegionEndpoint>> done() {
    if (list.empty()) return Status::invalid_argument("no region listed");
    return std::move(list);
  }
};

Result<std::vector<RegionEndpoint>> parse_json(std::string_view text) {
  using json = nlohmann::json;
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::invalid_argument("not valid JSON");
  const json* list = &doc;
  if (doc.is_object()) {
    auto it = doc.find("regions");
    if (it == doc.end()) return Status::invalid_argument("expected {\"regions\": [...]}");
    list = &*it;
  }
  if (!list->is_array())
    return Status::invalid_argument("expected a list of {\"name\": ..., \"endpoint\": ...}");
  Builder b;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& r = (*list)[i];
    const std::string where = fmt::format("region #{}", i + 1);
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string() ||
        !r.contains("endpoint") || !r["endpoint"].is_string())
      return Status::invalid_argument(
          fmt::format("{}: expected {{\"name\": STRING, \"endpoint\": STRING}}", where));
    if (Status s = b.add(where, r["name"].get<std::string>(), r["endpoint"].get<std::string>());
        !s.ok())
      return s;
  }
  return b.done();
}

Result<std::vector<RegionEndpoint>> parse_lines(std::string_view text) {
  Builder b;
  std::istringstream in{std::string(text)};
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream words(line);
    std::string name, endpoint, extra;
    if (!(words >> name) || name[0] == '#') continue;
    const std::string where = fmt::format("line {}", n);
    if (!(words >> endpoint) || (words >> extra))
      return Status::invalid_argument(fmt::format("{}: expected NAME ENDPOINT", where));
    if (Status s = b.add(where, name, endpoint); !s.ok()) return s;
  }
  return b.done();
}

}  // namespace

bool valid_region_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || !(name[0] >= 'a' && name[0] <= 'z')) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

Result<std::vector<RegionEndpoint>> parse_regions(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && (text[first] == '{' || text[first] == '['))
    return parse_json(text);
  return parse_lines(text);
}

Result<std::vector<RegionEndpoint>> load_regions_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found(fmt::format("cannot read the regions file '{}'", path));
  std::string text;
  text.resize(kMaxFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes)
    return Status::invalid_argument(
        fmt::format("regions file '{}': larger than {} bytes", path, kMaxFileBytes));
  auto r = parse_regions(text);
  if (!r.ok())
    return Status::invalid_argument(fmt::format("regions file '{}': {}", path, r.message()));
  return r;
}

}  // namespace nimbus::cloud
