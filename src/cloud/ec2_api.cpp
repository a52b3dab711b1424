#include "cloud/ec2_api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <ctime>

#include "cloud/sigv4.h"

namespace nimbus::cloud {

namespace {

constexpr std::string_view kVersion = "2016-11-15";
constexpr std::string_view kStsVersion = "2011-06-15";

http::Reply error_reply(const Ec2Error& e, const std::string& request_id) {
  http::Reply r;
  r.status = e.http_status < 400 ? 400 : e.http_status;
  r.body = ec2_error_body(e, request_id);
  r.content_type = "text/xml;charset=UTF-8";
  return r;
}

std::string caller_identity(const std::string& account, const std::string& access_key,
                            const std::string& request_id) {
  XmlWriter w("GetCallerIdentityResponse", "https://sts.amazonaws.com/doc/2011-06-15/");
  w.open("GetCallerIdentityResult")
      .text("Arn", fmt::format("arn:aws:iam::{}:root", account))
      .text("UserId", access_key.empty() ? account : access_key)
      .text("Account", account)
      .close();
  w.open("ResponseMetadata").text("RequestId", request_id).close();
  return w.finish();
}

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). EC2 takes
// only UTF-8 text, and the records are JSON, which cannot hold anything else.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

Ec2Error bad_parameter(const Status& s) { return invalid_parameter_value(s.message()); }

Ec2Result<std::vector<Filter>> parse_filters(const QueryParams& p) {
  std::vector<Filter> out;
  for (const QueryParams& m : p.members("Filter")) {
    Filter f;
    f.name = m.get_or("Name", "");
    if (f.name.empty()) return missing_parameter("Filter.N.Name");
    f.values = m.list("Value");
    if (f.values.empty())
      return invalid_parameter_value(fmt::format("The filter '{}' has no values", f.name));
    out.push_back(std::move(f));
  }
  if (out.size() > 200) return invalid_parameter_value("At most 200 filters");
  return out;
}

Tags parse_tag_list(const QueryParams& p, const std::string& prefix) {
  Tags tags;
  for (const QueryParams& t : p.members(prefix)) {
    if (auto k = t.get("Key")) tags[*k] = t.get_or("Value", "");
  }
  return tags;
}

Ec2Result<Tags> parse_tag_specifications(const QueryParams& p, const std::string& resource_type) {
  Tags out;
  for (const QueryParams& spec : p.members("TagSpecification")) {
    const std::string type = spec.get_or("ResourceType", "");
    if (type.empty()) return missing_parameter("TagSpecification.N.ResourceType");
    if (type != resource_type) continue;  // e.g. volume tags: nothing here has volumes
    for (const auto& [k, v] : parse_tag_list(spec, "Tag")) {
      if (k.empty() || k.size() > 128 || k.rfind("aws:", 0) == 0 || v.size() > 256)
        return invalid_parameter_value(
            "Tag keys are 1-128 characters (not aws:...), values at most 256");
      out[k] = v;
    }
  }
  if (out.size() > 50) return invalid_parameter_value("At most 50 tags per resource");
  return out;
}

void render_tags(XmlWriter& w, const Tags& tags) {
  w.open("tagSet");
  for (const auto& [k, v] : tags) w.open("item").text("key", k).text("value", v).close();
  w.close();
}

std::optional<std::vector<std::string>> tag_field(const Tags& tags, const std::string& name) {
  if (name.rfind("tag:", 0) == 0) {
    auto it = tags.find(name.substr(4));
    if (it == tags.end()) return std::vector<std::string>{};
    return std::vector<std::string>{it->second};
  }
  std::vector<std::string> out;
  if (name == "tag-key") {
    for (const auto& [k, v] : tags) out.push_back(k);
    return out;
  }
  if (name == "tag-value") {
    for (const auto& [k, v] : tags) out.push_back(v);
    return out;
  }
  return std::nullopt;
}

Ec2Api::Ec2Api(Cloud& cloud, HostDriver& driver, ApiCredentials credentials)
    : cloud_(cloud), driver_(driver), credentials_(std::move(credentials)) {
  add_instance_actions();
  add_resource_actions();
  add_key_pair_actions();
  add_network_actions();
  add_instance_attribute_actions();
}

std::optional<Ec2Error> Ec2Api::authenticate(const http::Request& req, std::string* access_key,
                                             std::string* region) {
  const std::string header = req.header("authorization");
  *region = cloud_.options().region;
  if (header.empty()) {
    if (!credentials_.keys.empty())
      return ec2_error("AuthFailure", "This cloud requires signed requests (SigV4)", 401);
    return std::nullopt;  // --no-sign-request: the default region
  }
  auto cred = parse_authorization(header);
  if (!cred.ok()) return incomplete_signature(cred.message());
  *access_key = cred->access_key;
  if (cred->region != cloud_.options().region)
    return ec2_error("AuthFailure",
                     fmt::format("This endpoint serves region {}; the request was signed for "
                                 "region {} (use --region {})",
                                 cloud_.options().region, cred->region, cloud_.options().region),
                     401);
  if (credentials_.keys.empty()) return std::nullopt;
  auto it = credentials_.keys.find(cred->access_key);
  if (it == credentials_.keys.end())
    return ec2_error("AuthFailure", "AWS was not able to validate the provided access credentials",
                     401);
  SigV4Request s;
  s.method = req.method;
  s.path = req.path;
  s.raw_query = req.method == "GET" ? encode_query(req.query) : "";
  s.headers = req.headers;
  s.body = req.body;
  return verify_sigv4(*cred, s, it->second, std::time(nullptr));
}

http::Reply Ec2Api::handle(const http::Request& req) {
  const std::string request_id = new_request_id();
  std::string access_key, region;
  if (req.method != "POST" && req.method != "GET")
    return error_reply(ec2_error("InvalidAction", "The EC2 API takes POST / (or GET /)", 405),
                       request_id);
  if (auto e = authenticate(req, &access_key, &region)) return error_reply(*e, request_id);
  // The body's parameters, or the URL's for GET (botocore always uses the body; for a
  // POST the HTTP layer also lists the form's fields as query parameters).
  auto params = QueryParams::parse(req.body);
  if (!params.ok()) return error_reply(bad_parameter(params.status()), request_id);
  if (req.method == "GET" && !req.query.empty()) {
    auto url = QueryParams::from_pairs(req.query);
    if (!url.ok()) return error_reply(bad_parameter(url.status()), request_id);
    if (Status s = params->merge(*url); !s.ok()) return error_reply(bad_parameter(s), request_id);
  }
  for (const auto& [key, value] : params->all()) {
    if (!valid_utf8(value))
      return error_reply(
          invalid_parameter_value(fmt::format("The value of {} is not valid UTF-8", key)),
          request_id);
  }
  const std::string action = params->get_or("Action", "");
  if (action.empty()) return error_reply(missing_parameter("Action"), request_id);
  const std::string version = params->get_or("Version", std::string(kVersion));
  if (action == "GetCallerIdentity") {
    http::Reply r;
    r.body = caller_identity(cloud_.options().account_id, access_key, request_id);
    r.content_type = "text/xml;charset=UTF-8";
    return r;
  }
  if (version != kVersion && version != kStsVersion)
    return error_reply(invalid_parameter_value(
                           fmt::format("Version '{}' is not supported: this endpoint speaks {}",
                                       quote_value_for_message(version), kVersion)),
                       request_id);
  auto it = actions_.find(action);
  if (it == actions_.end()) return error_reply(invalid_action(action), request_id);
  Call call{*params, action, request_id, access_key, region};
  Ec2Result<std::string> out = it->second(call);
  if (!out.ok()) {
    spdlog::info("{} refused ({}): {}", action, out.error().code, out.error().message);
    return error_reply(out.error(), request_id);
  }
  http::Reply r;
  r.body = std::move(out.value());
  r.content_type = "text/xml;charset=UTF-8";
  return r;
}

}  // namespace nimbus::cloud
