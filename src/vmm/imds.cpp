#include "vmm/imds.h"

#include <fmt/format.h>
#include <sys/random.h>

#include <array>
#include <string_view>

namespace nimbus::vmm {

namespace {

constexpr const char* kTokenPath = "/latest/api/token";
constexpr const char* kTtlHeader = "x-aws-ec2-metadata-token-ttl-seconds";
constexpr const char* kTokenHeader = "x-aws-ec2-metadata-token";
constexpr const char* kTtlHeaderOut = "X-aws-ec2-metadata-token-ttl-seconds";

// The versions EC2 lists at "/": each is served as an alias of latest.
constexpr std::array<std::string_view, 28> kVersions = {
    "1.0",        "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
    "2008-02-01", "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12",
    "2014-02-25", "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02",
    "2018-03-28", "2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03",
    "2021-03-23", "2021-07-15", "2022-09-24", "latest"};

const char* reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    default:
      return "Internal Server Error";
  }
}

ImdsReply text(std::string body, std::string content_type = "text/plain") {
  return ImdsReply{200, std::move(body), std::move(content_type), {}};
}

// The token's TTL header: 1 to 21600 seconds, digits only.
std::optional<unsigned> parse_ttl(const std::string& value) {
  if (value.empty() || value.size() > 9 ||
      value.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const unsigned long ttl = std::stoul(value);
  if (ttl < 1 || ttl > kMaxTokenTtlSeconds) return std::nullopt;
  return static_cast<unsigned>(ttl);
}

std::string random_token() {
  std::array<uint8_t, 32> bytes{};
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n <= 0) return {};  // no entropy to be had: the caller answers 500
    got += static_cast<size_t>(n);
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  for (size_t i = 0; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t{bytes[i]} << 16 | uint32_t{bytes[i + 1]} << 8 | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 63];
  }
  return out;  // 40 characters, 240 random bits
}

// Makes room for one more token: the expired ones go, then the one that expires first.
void prune_tokens(ImdsState& state, ImdsClock::time_point now) {
  std::erase_if(state.tokens, [now](const auto& t) { return t.second <= now; });
  while (state.tokens.size() >= kMaxImdsTokens) {
    auto first = state.tokens.begin();
    for (auto it = state.tokens.begin(); it != state.tokens.end(); ++it) {
      if (it->second < first->second) first = it;
    }
    state.tokens.erase(first);
  }
}

ImdsReply put_token(const ImdsRequest& req, ImdsState& state, ImdsClock::time_point now) {
  // A request relayed by a proxy inside the instance (EC2 and Firecracker refuse these).
  if (req.has("x-forwarded-for")) return imds_error(403);
  const auto ttl = req.has(kTtlHeader) ? parse_ttl(req.header(kTtlHeader)) : std::nullopt;
  if (!ttl) return imds_error(400);
  const std::string token = state.new_token ? state.new_token() : random_token();
  if (token.empty()) return imds_error(500);
  prune_tokens(state, now);
  state.tokens[token] = now + std::chrono::seconds(*ttl);
  ImdsReply r = text(token);
  r.headers.emplace_back(kTtlHeaderOut, std::to_string(*ttl));
  return r;
}

// One directory's listing as EC2 writes it.
std::string listing(const config::json& dir, bool slashes) {
  std::string out;
  for (const auto& [name, value] : dir.items()) {
    if (!out.empty()) out += '\n';
    out += name;
    // EC2 lists public-keys/ as "0=my-key", without the directory's slash.
    if (slashes && value.is_object() && name.find('=') == std::string::npos) out += '/';
  }
  return out;
}

// The path's segments after the version, without a final empty one ("meta-data/" is
// "meta-data"); nullopt for a path that is not "/VERSION[/...]".
std::optional<std::vector<std::string_view>> segments(std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  std::vector<std::string_view> out;
  path.remove_prefix(1);
  while (true) {
    const size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  if (out.size() > 1 && out.back().empty()) out.pop_back();
  return out;
}

ImdsReply get_path(const std::string& path, const config::json& data) {
  if (path == "/") {
    std::string out;
    for (std::string_view v : kVersions) out += (out.empty() ? "" : "\n") + std::string(v);
    return text(out);
  }
  auto parts = segments(path);
  if (!parts || parts->empty()) return imds_error(404);
  bool known = false;
  for (std::string_view v : kVersions) known = known || v == (*parts)[0];
  if (!known) return imds_error(404);
  if (parts->size() == 1) return text(listing(data, false));
  if (parts->size() == 2 && (*parts)[1] == "user-data") {
    if (!data.contains("user-data") || !data["user-data"].is_string()) return imds_error(404);
    auto raw = config::decode_base64(data["user-data"].get_ref<const std::string&>());
    if (!raw) return imds_error(404);  // refused when configured; never served half-decoded
    return text(std::move(*raw), "application/octet-stream");
  }
  const config::json* node = &data;
  for (size_t i = 1; i < parts->size(); i++) {
    const std::string_view name = (*parts)[i];
    if (!node->is_object() || name.empty()) return imds_error(404);
    const config::json* next = nullptr;
    for (const auto& [key, value] : node->items()) {
      if (std::string_view(key).substr(0, key.find('=')) == name) {
        next = &value;
        break;
      }
    }
    if (next == nullptr) return imds_error(404);
    node = next;
  }
  if (node->is_object()) return text(listing(*node, true));
  if (node->is_string()) return text(node->get<std::string>());
  return imds_error(404);
}

}  // namespace

ImdsReply imds_error(int status) {
  const std::string title = fmt::format("{} - {}", status, reason(status));
  return ImdsReply{status,
                   fmt::format("<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n"
                               "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n"
                               "\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n"
                               "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" "
                               "lang=\"en\">\n <head>\n  <title>{0}</title>\n </head>\n <body>\n"
                               "  <h1>{0}</h1>\n </body>\n</html>\n",
                               title),
                   "text/html",
                   {}};
}

ImdsReply handle_imds(const ImdsRequest& req, ImdsState& state, ImdsClock::time_point now) {
  const config::MetadataOptions& o = state.metadata.options;
  if (!o.endpoint_enabled) return imds_error(403);
  if (req.method == "PUT") {
    if (req.path != kTokenPath) {
      ImdsReply r = imds_error(405);
      r.headers.emplace_back("Allow", "GET");
      return r;
    }
    return put_token(req, state, now);
  }
  if (req.method != "GET" || req.path == kTokenPath) {
    ImdsReply r = imds_error(405);
    r.headers.emplace_back("Allow", req.path == kTokenPath ? "PUT" : "GET, PUT");
    return r;
  }
  std::optional<ImdsClock::time_point> expiry;
  if (req.has(kTokenHeader)) {
    auto it = state.tokens.find(req.header(kTokenHeader));
    if (it == state.tokens.end()) return imds_error(401);
    if (it->second <= now) {
      state.tokens.erase(it);
      return imds_error(401);
    }
    expiry = it->second;
  } else if (o.tokens_required) {
    return imds_error(401);
  }
  ImdsReply r = get_path(req.path, state.metadata.data);
  if (expiry && r.status == 200) {
    const auto left = std::chrono::ceil<std::chrono::seconds>(*expiry - now).count();
    r.headers.emplace_back(kTtlHeaderOut, std::to_string(left));
  }
  return r;
}

}  // namespace nimbus::vmm
