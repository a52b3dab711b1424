// The web console's backend (console_api.h): sessions, every route's guard, launch
// validation, actions over the fake hosts, the overview, assets, events and metrics.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "cloud/cloud_server.h"
#include "cloud/cloud_test_fixture.h"
#include "cloud/console_api.h"
#include "cloud/console_assets.h"
#include "cloud/ec2_api.h"
#include "common/http_client.h"
#include "common/websocket.h"

namespace nimbus::cloud {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr const char* kKey = "AKIDCONSOLE";
constexpr const char* kSecret = "s3cret/with+chars";

ApiCredentials creds() {
  ApiCredentials c;
  c.keys[kKey] = kSecret;
  c.keys["OTHERKEY"] = "other-secret";
  return c;
}

class ConsoleTest : public ::testing::Test {
 protected:
  ConsoleTest() {
    ConsoleOptions o;
    o.session_ttl = 600s;
    o.events_poll = 20ms;
    o.events_keepalive = 1000ms;
    console = std::make_unique<Console>(bed.cloud(), bed.driver(), creds(), o, [this] {
      return std::chrono::steady_clock::time_point(std::chrono::hours(5)) +
             std::chrono::seconds(now_s.load());
    });
    bed.add_hosts(1);
  }

  http::Request req(const std::string& method, const std::string& path,
                    const std::string& body = "", bool csrf = true, const std::string& token = "") {
    http::Request r;
    r.method = method;
    r.path = path;
    r.body = body;
    if (csrf) r.headers.emplace("x-nimbus-console", "1");
    const std::string t = token.empty() ? cookie : token;
    if (!t.empty()) r.headers.emplace("cookie", "other=1; nimbus_console=" + t);
    return r;
  }
  http::Reply call(const std::string& method, const std::string& path, const std::string& body = "",
                   bool csrf = true) {
    auto r = console->handle(req(method, path, body, csrf));
    EXPECT_TRUE(r.has_value()) << path;
    return r ? *r : http::Reply{};
  }
  static json body_of(const http::Reply& r) { return json::parse(r.body, nullptr, false); }
  static std::string code_of(const http::Reply& r) {
    json j = body_of(r);
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
  }
  static std::string header(const http::Reply& r, const std::string& name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? "" : it->second;
  }

  // Signs in; the cookie's token is kept for the next calls.
  void sign_in() {
    auto r = call("POST", "/console/api/session",
                  json{{"access_key", kKey}, {"secret", kSecret}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string set = header(r, "Set-Cookie");
    ASSERT_EQ(set.rfind("nimbus_console=", 0), 0u) << set;
    cookie = set.substr(15, 64);
  }
  void settle() {
    for (int n = 0; n < 3; ++n) bed.reconciler().pass_now();
  }

  CloudTestBed bed;
  std::atomic<int64_t> now_s{0};
  std::unique_ptr<Console> console;
  std::string cookie;
};

TEST_F(ConsoleTest, SignInRightWrongAndUnknownKey) {
  auto ok =
      call("POST", "/console/api/session", json{{"access_key", kKey}, {"secret", kSecret}}.dump());
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(body_of(ok)["access_key"], kKey);
  EXPECT_EQ(body_of(ok)["expires_in"], 600);
  const std::string set = header(ok, "Set-Cookie");
  EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("SameSite=Strict"), std::string::npos) << set;
  EXPECT_NE(set.find("Path=/console"), std::string::npos) << set;
  EXPECT_NE(set.find("Max-Age=600"), std::string::npos) << set;
  EXPECT_EQ(console->sessions().size(), 1u);

  auto wrong = call("POST", "/console/api/session",
                    json{{"access_key", kKey}, {"secret", "other-secret"}}.dump());
  auto unknown = call("POST", "/console/api/session",
                      json{{"access_key", "NOSUCHKEY"}, {"secret", kSecret}}.dump());
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(wrong.body, unknown.body);  // nothing tells an unknown key from a wrong secret
  EXPECT_TRUE(header(wrong, "Set-Cookie").empty());
  EXPECT_EQ(console->sessions().size(), 1u);

  for (const std::string bad :
       {"", "[]", "{\"access_key\": 1, \"secret\": \"x\"}", "{\"access_key\": \"A\"}",
        "{\"access_key\":\"A\",\"secret\":\"s\",\"x\":1}",
        "{\"access_key\": \"A\\nB\", \"secret\": \"s\"}"}) {
    EXPECT_EQ(call("POST", "/console/api/session", bad).status, 400) << bad;
  }
  EXPECT_EQ(console->sessions().size(), 1u);
}

TEST_F(ConsoleTest, NoCredentialsRefusesSignIn) {
  Console bare(bed.cloud(), bed.driver(), ApiCredentials{});
  auto r = bare.handle(
      req("POST", "/console/api/session", json{{"access_key", kKey}, {"secret", kSecret}}.dump()));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("--credentials"), std::string::npos) << r->body;
  EXPECT_EQ(bare.sessions().size(), 0u);
}

TEST_F(ConsoleTest, SessionExpiresAndSignsOut) {
  sign_in();
  EXPECT_EQ(call("GET", "/console/api/session").status, 200);
  EXPECT_EQ(call("GET", "/console/api/instances").status, 200);
  now_s += 599;
  auto who = call("GET", "/console/api/session");
  EXPECT_EQ(who.status, 200);
  EXPECT_EQ(body_of(who)["expires_in"], 1);
  now_s += 1;
  EXPECT_EQ(call("GET", "/console/api/session").status, 401);
  EXPECT_EQ(call("GET", "/console/api/instances").status, 401);

  sign_in();
  EXPECT_EQ(call("GET", "/console/api/overview").status, 200);
  auto out = call("DELETE", "/console/api/session");
  EXPECT_EQ(out.status, 200);
  EXPECT_NE(header(out, "Set-Cookie").find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(call("GET", "/console/api/overview").status, 401);
  // Expired sessions are swept by the next sign-in.
  now_s += 10000;
  sign_in();
  EXPECT_EQ(console->sessions().size(), 1u);
}

TEST_F(ConsoleTest, FailedSignInsAreThrottled) {
  auto attempt = [&](const std::string& key, const std::string& secret) {
    return call("POST", "/console/api/session",
                json{{"access_key", key}, {"secret", secret}}.dump())
        .status;
  };
  for (size_t n = 0; n < ConsoleSessions::kFailuresPerKey; ++n)
    EXPECT_EQ(attempt(kKey, "guess" + std::to_string(n)), 401);
  // That key is refused for a minute, even with its right secret; others are not.
  auto refused =
      call("POST", "/console/api/session", json{{"access_key", kKey}, {"secret", kSecret}}.dump());
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(code_of(refused), "TooManyFailedSignIns");
  EXPECT_TRUE(header(refused, "Set-Cookie").empty());
  EXPECT_EQ(attempt("AKIDOTHER", "x"), 401);
  now_s += 60;
  EXPECT_EQ(attempt(kKey, kSecret), 200);
  // Many keys at once: after kFailuresTotal failures everyone waits.
  for (size_t n = 0; n < ConsoleSessions::kFailuresTotal; ++n)
    attempt("AKID" + std::to_string(n), "x");
  EXPECT_EQ(attempt(kKey, kSecret), 429);
  now_s += 60;
  EXPECT_EQ(attempt(kKey, kSecret), 200);
}

TEST_F(ConsoleTest, AtMostMaxSessions) {
  ConsoleSessions s(creds(), 60s, 3);
  for (int n = 0; n < 3; ++n) ASSERT_TRUE(s.sign_in(kKey, kSecret).ok());
  auto full = s.sign_in(kKey, kSecret);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), Code::kInsufficientCapacity);
}

TEST_F(ConsoleTest, CookieParsing) {
  const std::string t(64, 'a');
  EXPECT_EQ(ConsoleSessions::cookie_token("nimbus_console=" + t), t);
  EXPECT_EQ(ConsoleSessions::cookie_token("a=b;  nimbus_console=" + t + " ; c=d"), t);
  EXPECT_EQ(ConsoleSessions::cookie_token("nimbus_console=" + t.substr(1)), "");
  EXPECT_EQ(ConsoleSessions::cookie_token("nimbus_console=" + std::string(64, 'G')), "");
  EXPECT_EQ(ConsoleSessions::cookie_token("xnimbus_console=" + t), "");
  EXPECT_EQ(ConsoleSessions::cookie_token(""), "");
  // A token that was never handed out is no session.
  EXPECT_FALSE(console->sessions().find(t));
}

TEST_F(ConsoleTest, EveryRouteNeedsASession) {
  const std::string id = "i-0123456789abcdef0";
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/console/api/overview"},
      {"GET", "/console/api/instances"},
      {"POST", "/console/api/instances"},
      {"GET", "/console/api/choices"},
      {"GET", "/console/api/events"},
      {"GET", "/console/api/instances/" + id},
      {"GET", "/console/api/instances/" + id + "/metrics"},
      {"GET", "/console/api/instances/" + id + "/terminal"},
      {"POST", "/console/api/instances/" + id + "/stop"},
      {"POST", "/console/api/instances/" + id + "/start"},
      {"POST", "/console/api/instances/" + id + "/reboot"},
      {"POST", "/console/api/instances/" + id + "/terminate"},
      {"POST", "/console/api/instances/" + id + "/type"},
      {"POST", "/console/api/instances/" + id + "/tags"},
      {"DELETE", "/console/api/instances/" + id + "/tags"},
      {"GET", "/console/api/nothing-here"},
  };
  const std::string forged(64, 'f');
  for (const auto& [m, p] : routes) {
    for (const std::string& tok : {std::string(), forged}) {
      auto r = console->handle(req(m, p, "{}", true, tok));
      ASSERT_TRUE(r) << p;
      EXPECT_EQ(r->status, 401) << m << " " << p;
      EXPECT_EQ(code_of(*r), "Unauthorized") << r->body;
      EXPECT_FALSE(header(*r, "Content-Security-Policy").empty());
    }
  }
  EXPECT_EQ(call("GET", "/console/api/session").status, 401);
  EXPECT_FALSE(console->handle(req("GET", "/consolex")).has_value());
  EXPECT_FALSE(console->handle(req("GET", "/nimbus/v1/health")).has_value());
}

TEST_F(ConsoleTest, WritesNeedTheCsrfHeader) {
  sign_in();
  const auto before = bed.store_dump();
  const std::string launch =
      json{{"image_id", bed.image_id()}, {"instance_type", "n1.tiny"}}.dump();
  auto r = call("POST", "/console/api/instances", launch, false);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(call("DELETE", "/console/api/session", "", false).status, 403);
  EXPECT_EQ(call("POST", "/console/api/session",
                 json{{"access_key", kKey}, {"secret", kSecret}}.dump(), false)
                .status,
            403);
  auto wrong = req("POST", "/console/api/instances", launch, false);
  wrong.headers.emplace("x-nimbus-console", "yes");
  EXPECT_EQ(console->handle(wrong)->status, 403);
  EXPECT_EQ(bed.store_dump(), before);
  EXPECT_EQ(call("GET", "/console/api/session").status, 200);  // still signed in
}

TEST_F(ConsoleTest, LaunchValidationChangesNothing) {
  sign_in();
  const auto before = bed.store_dump();
  const json good = {{"image_id", bed.image_id()}, {"instance_type", "n1.tiny"}};
  auto with = [&](const std::string& k, json v) {
    json j = good;
    j[k] = std::move(v);
    return j.dump();
  };
  const std::vector<std::string> bodies = {
      "",
      "not json",
      "[1,2]",
      "{\"image_id\": ",
      json{{"instance_type", "n1.tiny"}}.dump(),
      with("image_id", "<script>alert(1)</script>"),
      with("image_id", 42),
      with("image_id", "ami-" + std::string(100000, '0')),
      with("instance_type", "n1.tiny\"; DROP"),
      with("instance_type", json::array({"n1.tiny"})),
      with("key_name", std::string(300, 'k')),
      with("key_name", "k\x01"),
      with("security_group_ids", "sg-0123"),
      with("security_group_ids", json::array({"<b>"})),
      with("user_data", std::string(16 * 1024 + 1, 'u')),
      with("user_data", std::string("a\0b", 3)),
      "{\"image_id\": \"" + bed.image_id() +
          "\", \"instance_type\": \"n1.tiny\", \"name\": \"\xff\xfe\"}",
      with("user_data", 5),
      with("zone", "nowhere-1z"),
      with("name", std::string(1000, 'n')),
      with("name", "a\nb"),
      with("count", 0),
      with("count", 21),
      with("count", 1.5),
      with("count", "3"),
      with("unexpected", true),
      std::string(70 * 1024, ' '),  // over the body cap
  };
  for (const auto& b : bodies) {
    auto r = call("POST", "/console/api/instances", b);
    EXPECT_TRUE(r.status == 400 || r.status == 413) << r.status << " " << b.substr(0, 80);
    EXPECT_TRUE(body_of(r).contains("error")) << r.body;
  }
  // The cloud's own refusals come back as 400 with EC2's code.
  auto unknown_image =
      call("POST", "/console/api/instances", with("image_id", "ami-0123456789abcdef0"));
  EXPECT_EQ(unknown_image.status, 400);
  EXPECT_EQ(code_of(unknown_image).rfind("InvalidAMIID", 0), 0u) << unknown_image.body;
  auto unknown_type = call("POST", "/console/api/instances", with("instance_type", "z9.huge"));
  EXPECT_EQ(unknown_type.status, 400) << unknown_type.body;
  EXPECT_EQ(bed.store_dump(), before);
  // Hostile but valid text is taken as text.
  auto ok = call("POST", "/console/api/instances",
                 json{{"image_id", bed.image_id()},
                      {"instance_type", "n1.tiny"},
                      {"name", "<script>alert('x')</script> \"q\""},
                      {"user_data", "#!/bin/sh\necho hi\n"},
                      {"count", 2}}
                     .dump());
  ASSERT_EQ(ok.status, 200) << ok.body;
  ASSERT_EQ(body_of(ok)["instances"].size(), 2u);
  auto i = bed.cloud().instance(body_of(ok)["instances"][0]);
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(i->tags["Name"], "<script>alert('x')</script> \"q\"");
  EXPECT_EQ(i->user_data, "IyEvYmluL3NoCmVjaG8gaGkK");  // base64 of the text
}

TEST_F(ConsoleTest, ActionsRoundTripOverTheFakeHosts) {
  sign_in();
  auto launched = call(
      "POST", "/console/api/instances",
      json{{"image_id", bed.image_id()}, {"instance_type", "n1.tiny"}, {"name", "web"}}.dump());
  ASSERT_EQ(launched.status, 200) << launched.body;
  const std::string id = body_of(launched)["instances"][0];
  const std::string base = "/console/api/instances/" + id;
  settle();
  auto got = call("GET", base);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(body_of(got)["state"], "running");
  EXPECT_EQ(body_of(got)["name"], "web");
  const std::string host = body_of(got)["host"];
  bed.driver().set_console(host, id, "login: " + std::string(70000, 'x') + "END");
  got = call("GET", base);
  const std::string out = body_of(got)["console_output"];
  EXPECT_EQ(out.size(), 64u * 1024);
  EXPECT_EQ(out.substr(out.size() - 3), "END");

  auto listed = body_of(call("GET", "/console/api/instances"))["instances"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["id"], id);
  EXPECT_EQ(listed[0]["type"], "n1.tiny");

  // The type changes only while stopped (EC2's rule).
  auto early = call("POST", base + "/type", json{{"instance_type", "n1.small"}}.dump());
  EXPECT_EQ(early.status, 409) << early.body;
  auto stop = call("POST", base + "/stop");
  ASSERT_EQ(stop.status, 200) << stop.body;
  EXPECT_EQ(body_of(stop)["state"], "stopping");
  settle();
  EXPECT_EQ(bed.driver().vm(host, id)->state, "stopped");
  EXPECT_EQ(body_of(call("GET", base))["state"], "stopped");
  auto type = call("POST", base + "/type", json{{"instance_type", "n1.small"}}.dump());
  ASSERT_EQ(type.status, 200) << type.body;
  EXPECT_EQ(bed.cloud().instance(id)->instance_type, "n1.small");
  auto start = call("POST", base + "/start");
  ASSERT_EQ(start.status, 200) << start.body;
  EXPECT_EQ(body_of(start)["state"], "pending");
  settle();
  EXPECT_EQ(bed.driver().vm(host, id)->state, "running");
  EXPECT_EQ(bed.cloud().instance(id)->state, InstanceState::kRunning);
  auto reboot = call("POST", base + "/reboot");
  ASSERT_EQ(reboot.status, 200) << reboot.body;
  EXPECT_EQ(bed.cloud().instance(id)->reboot_requests, 1u);

  auto tagged =
      call("POST", base + "/tags", json{{"tags", {{"env", "prod"}, {"team", "<a>"}}}}.dump());
  ASSERT_EQ(tagged.status, 200) << tagged.body;
  EXPECT_EQ(body_of(tagged)["tags"]["team"], "<a>");
  EXPECT_EQ(call("POST", base + "/tags", json{{"tags", {{"aws:x", "y"}}}}.dump()).status, 400);
  EXPECT_EQ(call("POST", base + "/tags", json{{"tags", {{"k", 1}}}}.dump()).status, 400);
  auto untagged = call("DELETE", base + "/tags", json{{"keys", {"env"}}}.dump());
  ASSERT_EQ(untagged.status, 200) << untagged.body;
  EXPECT_FALSE(body_of(untagged)["tags"].contains("env"));
  EXPECT_EQ(bed.cloud().instance(id)->tags.count("env"), 0u);

  auto term = call("POST", base + "/terminate");
  ASSERT_EQ(term.status, 200) << term.body;
  EXPECT_EQ(body_of(term)["state"], "shutting-down");
  settle();
  EXPECT_FALSE(bed.driver().vm(host, id).has_value());
  EXPECT_EQ(bed.cloud().instance(id)->state, InstanceState::kTerminated);

  // Unknown and malformed ids, unknown verbs, wrong methods.
  EXPECT_EQ(call("POST", "/console/api/instances/i-00000000000000000/stop").status, 404);
  EXPECT_EQ(call("POST", "/console/api/instances/..%2f/stop").status, 404);
  EXPECT_EQ(call("POST", base + "/explode").status, 404);
  EXPECT_EQ(call("GET", base + "/stop").status, 405);
  EXPECT_EQ(call("POST", base + "/stop", "{\"force\": true}").status, 400);
}

TEST_F(ConsoleTest, OverviewCountsHostsAndClaims) {
  sign_in();
  bed.add_hosts(1, TestHost{"", "", 4, 4096, 50000}, {"nimbus-west-1b"});  // h-b-1 again, smaller
  auto r = call(
      "POST", "/console/api/instances",
      json{{"image_id", bed.image_id()}, {"instance_type", "n1.tiny"}, {"zone", "nimbus-west-1a"}}
          .dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto ov = call("GET", "/console/api/overview");
  ASSERT_EQ(ov.status, 200) << ov.body;
  json o = body_of(ov);
  EXPECT_EQ(o["region"], "nimbus-west-1");
  // Without a regions file: this region alone, at its endpoint, marked current.
  ASSERT_EQ(o["regions"].size(), 1u);
  EXPECT_EQ(o["regions"][0]["name"], "nimbus-west-1");
  EXPECT_EQ(o["regions"][0]["current"], true);
  EXPECT_EQ(o["regions"][0]["endpoint"], bed.cloud().options().endpoint_url);
  ASSERT_EQ(o["zones"].size(), 3u);
  EXPECT_EQ(o["zones"][0]["name"], "nimbus-west-1a");
  EXPECT_EQ(o["zones"][0]["hosts"], 1);
  EXPECT_EQ(o["zones"][0]["instances"], 1);
  EXPECT_EQ(o["zones"][1]["instances"], 0);
  ASSERT_EQ(o["hosts"].size(), 3u);
  json a, b;
  for (const auto& h : o["hosts"]) {
    if (h["id"] == "h-a-1") a = h;
    if (h["id"] == "h-b-1") b = h;
  }
  ASSERT_TRUE(a.is_object() && b.is_object()) << o.dump();
  const InstanceType* tiny = nullptr;
  for (const auto& t : bed.cloud().instance_types()) {
    if (t.name == "n1.tiny") tiny = &t;
  }
  ASSERT_NE(tiny, nullptr);
  EXPECT_EQ(a["state"], "up");
  EXPECT_EQ(a["cpus"]["capacity"], 8);
  EXPECT_EQ(a["cpus"]["allocated"], tiny->vcpus);
  EXPECT_EQ(a["cpus"]["used"], 0);  // what the host itself reported
  EXPECT_EQ(a["memory_mib"]["allocated"], tiny->memory_mib);
  EXPECT_EQ(a["disk_mib"]["allocated"], 3);
  ASSERT_EQ(a["instances"].size(), 1u);
  EXPECT_EQ(b["cpus"]["capacity"], 4);
  EXPECT_EQ(b["memory_mib"]["capacity"], 4096);
  EXPECT_EQ(b["cpus"]["allocated"], 0);
  ASSERT_TRUE(bed.cloud().set_draining("h-b-1", true).ok());
  bed.advance(20s);  // past the host timeout: every host is down
  o = body_of(call("GET", "/console/api/overview"));
  for (const auto& h : o["hosts"]) EXPECT_EQ(h["state"], "down") << h.dump();

  auto ch = body_of(call("GET", "/console/api/choices"));
  ASSERT_EQ(ch["images"].size(), 1u);
  EXPECT_EQ(ch["images"][0]["id"], bed.image_id());
  EXPECT_FALSE(ch["instance_types"].empty());
  EXPECT_EQ(ch["zones"].size(), 3u);
  EXPECT_EQ(ch["security_groups"][0]["name"], "default");
  EXPECT_TRUE(ch["key_pairs"].is_array());
}

TEST_F(ConsoleTest, AssetsWithTypesAndSecurityHeaders) {
  const auto table = console_asset_table();
  ASSERT_FALSE(table.empty());
  for (const ConsoleAsset& a : table) {
    auto r = console->handle(req("GET", std::string("/console/assets/") + a.name, "", false));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << a.name;
    EXPECT_EQ(r->body.size(), a.size);
    EXPECT_EQ(r->content_type, console_content_type(a.name));
    EXPECT_EQ(header(*r, "Cache-Control"), "no-cache");
    EXPECT_EQ(header(*r, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(header(*r, "X-Frame-Options"), "DENY");
    EXPECT_EQ(header(*r, "Content-Security-Policy"),
              "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; "
              "img-src 'self' data:");
  }
  EXPECT_EQ(console_content_type("vendor/xterm.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(console_content_type("vendor/xterm.css"), "text/css; charset=utf-8");
  EXPECT_EQ(console_content_type("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(console_content_type("LICENSE"), "application/octet-stream");
  if (console_asset("vendor/xterm.js")) {
    auto r = call("GET", "/console/assets/vendor/xterm.js");
    EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
  }
  for (const std::string p : {"/console/assets/nope.js", "/console/assets/../CMakeLists.txt",
                              "/console/assets/vendor/../../x", "/console/assets/",
                              "/console/assets//etc/passwd", "/console/other"}) {
    auto r = call("GET", p);
    EXPECT_EQ(r.status, 404) << p;
    EXPECT_FALSE(header(r, "Content-Security-Policy").empty());
  }
  EXPECT_EQ(call("POST", "/console/assets/vendor/xterm.js").status, 405);
  auto index = call("GET", "/console");
  EXPECT_EQ(index.status, console_asset("index.html") ? 200 : 404);
  EXPECT_EQ(call("GET", "/console/").status, index.status);
}

// Reads from `fd` until `needle` arrived (or 5 s, or EOF); returns what was read.
std::string read_until(int fd, const std::string& needle, std::string& buf) {
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (buf.find(needle) == std::string::npos && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char tmp[4096];
    const ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n <= 0) break;
    buf.append(tmp, static_cast<size_t>(n));
  }
  return buf;
}

TEST_F(ConsoleTest, EventsDeliverAChange) {
  sign_in();
  auto r = call("GET", "/console/api/events");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/event-stream");
  ASSERT_TRUE(r.upgrade);
  EXPECT_EQ(console->events().streams(), 1u);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::thread stream([&] { r.upgrade(sv[0], ""); });
  std::string got;
  read_until(sv[1], "event: instances\ndata: {\"instances\":[]}\n\n", got);
  ASSERT_NE(got.find("event: instances\ndata: {\"instances\":[]}\n\n"), std::string::npos) << got;
  // A launch shows up without asking.
  auto l = call("POST", "/console/api/instances",
                json{{"image_id", bed.image_id()}, {"instance_type", "n1.tiny"}}.dump());
  ASSERT_EQ(l.status, 200);
  const std::string id = body_of(l)["instances"][0];
  got.clear();
  read_until(sv[1], id, got);
  EXPECT_NE(got.find("event: instances\ndata: {\"instances\":[{"), std::string::npos) << got;
  EXPECT_NE(got.find("\"state\":\"pending\""), std::string::npos) << got;
  settle();
  got.clear();
  read_until(sv[1], "\"state\":\"running\"", got);
  EXPECT_NE(got.find("\"state\":\"running\""), std::string::npos) << got;
  got.clear();
  read_until(sv[1], ": keepalive\n\n", got);
  EXPECT_NE(got.find(": keepalive\n\n"), std::string::npos) << got;
  // The stream ends with the session.
  EXPECT_EQ(call("DELETE", "/console/api/session").status, 200);
  stream.join();
  r = http::Reply{};  // the reply's slot goes with it
  EXPECT_EQ(console->events().streams(), 0u);
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST_F(ConsoleTest, EventStreamsAreCappedAndEndWithThePeer) {
  ConsoleEvents ev([] { return ConsoleEvents::Snapshot{"{}", "{}", true}; }, 2, 10ms, 1000ms);
  ASSERT_TRUE(ev.reserve());
  ASSERT_TRUE(ev.reserve());
  EXPECT_FALSE(ev.reserve());
  ev.release();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::thread t([&] { ev.run(sv[0], [] { return true; }); });
  std::string got;
  read_until(sv[1], "data: {}\n\n", got);
  ::close(sv[1]);  // the browser went away
  t.join();
  ev.release();
  ::close(sv[0]);
  EXPECT_EQ(ev.streams(), 0u);
}

TEST_F(ConsoleTest, MetricsFromCpuSecondsDeltas) {
  ConsoleMetrics m(bed.cloud(), bed.driver(), 5s, 3);
  const std::string id = "i-0123456789abcdef0";
  auto vm = [&](double cpu, double mem, const std::string& state = "running") {
    return json{{"vms",
                 {{{"name", id},
                   {"state", state},
                   {"usage", {{"cpu_seconds", cpu}, {"memory_mib", mem}}}}}}};
  };
  m.ingest(vm(10, 100), 1'000'000);
  EXPECT_TRUE(m.samples(id).empty());  // the first is the base
  m.ingest(vm(12.5, 120), 1'005'000);  // 2.5 CPU-seconds in 5 s: 50 %
  auto s = m.samples(id);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].t, 1005);
  EXPECT_NEAR(s[0].cpu_pct, 50.0, 1e-9);
  EXPECT_EQ(s[0].memory_mib, 120);
  m.ingest(vm(22.5, 120), 1'010'000);  // two busy vCPUs: 200 %
  EXPECT_NEAR(m.samples(id).back().cpu_pct, 200.0, 1e-9);
  m.ingest(vm(1, 50), 1'015'000);  // restarted: a new base, no negative sample
  EXPECT_EQ(m.samples(id).size(), 2u);
  m.ingest(vm(2, 50), 1'020'000);
  m.ingest(vm(3, 50), 1'025'000);
  EXPECT_EQ(m.samples(id).size(), 3u);  // keeps the last `keep`
  EXPECT_NEAR(m.samples(id).back().cpu_pct, 20.0, 1e-9);
  // Garbage from a host is skipped.
  for (const json& g :
       {json(nullptr), json::array({1, "x", nullptr}), json{{"vms", 5}},
        json{{"vms", {{{"name", "../x"}, {"state", "running"}, {"usage", {{"cpu_seconds", 1}}}}}}},
        vm(-1, 5), vm(std::nan(""), 5), vm(100, 5, "stopped")})
    m.ingest(g, 1'030'000);
  EXPECT_EQ(m.samples(id).size(), 3u);
  EXPECT_TRUE(m.samples("i-ffffffffffffffff0").empty());
  // sample_now asks the alive hosts (the fake ones report no usage: nothing, no crash).
  m.sample_now();
}

TEST_F(ConsoleTest, MetricsRouteShape) {
  sign_in();
  auto l = call("POST", "/console/api/instances",
                json{{"image_id", bed.image_id()}, {"instance_type", "n1.tiny"}}.dump());
  const std::string id = body_of(l)["instances"][0];
  json vms = {{"vms",
               {{{"name", id},
                 {"state", "running"},
                 {"usage", {{"cpu_seconds", 1.0}, {"memory_mib", 64}}}}}}};
  console->metrics().ingest(vms, 2'000'000);
  vms["vms"][0]["usage"]["cpu_seconds"] = 2.0;
  console->metrics().ingest(vms, 2'005'000);
  auto r = call("GET", "/console/api/instances/" + id + "/metrics");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = body_of(r);
  EXPECT_EQ(j["interval_s"], 5);
  ASSERT_EQ(j["samples"].size(), 1u);
  EXPECT_NEAR(j["samples"][0]["cpu_pct"].get<double>(), 20.0, 1e-9);
  EXPECT_EQ(j["samples"][0]["memory_mib"], 64);
  EXPECT_EQ(call("GET", "/console/api/instances/i-00000000000000000/metrics").status, 404);
}

// The terminal: the browser's WebSocket relayed to the host's console (a fake nimbusd end
// over a socketpair), both ways; the Origin check; a too-large message closes it.
TEST_F(ConsoleTest, TerminalRelaysBothWays) {
  sign_in();
  auto l = call("POST", "/console/api/instances",
                json{{"image_id", bed.image_id()}, {"instance_type", "n1.tiny"}}.dump());
  const std::string id = body_of(l)["instances"][0];
  auto ws_req = [&](const std::string& origin) {
    http::Request r = req("GET", "/console/api/instances/" + id + "/terminal", "", false);
    r.headers.emplace("host", "127.0.0.1:8773");
    if (!origin.empty()) r.headers.emplace("origin", origin);
    r.headers.emplace("upgrade", "websocket");
    r.headers.emplace("connection", "keep-alive, Upgrade");
    r.headers.emplace("sec-websocket-version", "13");
    r.headers.emplace("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    return r;
  };
  std::unique_ptr<http::ws::Socket> nimbusd;  // the host's end of its console
  std::string opened_on;
  console->set_terminal_opener(
      [&](const HostRecord& h, const std::string& vm) -> Result<http::ws::Socket> {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return Status::internal("socketpair");
        opened_on = h.id + "/" + vm;
        nimbusd = std::make_unique<http::ws::Socket>(sv[1], http::ws::Role::kServer);
        return http::ws::Socket(sv[0], http::ws::Role::kClient);
      });
  // Not running yet: 409, nothing opened.
  EXPECT_EQ(console->handle(ws_req("http://127.0.0.1:8773"))->status, 409);
  settle();
  EXPECT_EQ(console->handle(ws_req(""))->status, 403);
  EXPECT_EQ(console->handle(ws_req("http://evil.example"))->status, 403);
  EXPECT_EQ(console->handle(ws_req("http://127.0.0.1:8773.evil"))->status, 403);
  EXPECT_FALSE(nimbusd);

  auto reply = console->handle(ws_req("http://127.0.0.1:8773"));
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->status, 101) << reply->body;
  ASSERT_TRUE(reply->upgrade);
  ASSERT_TRUE(nimbusd);
  EXPECT_EQ(opened_on, bed.cloud().instance(id)->host + "/" + id);
  EXPECT_EQ(console->terminals(), 1u);
  int bv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, bv), 0);
  std::thread relay([&] {
    reply->upgrade(bv[0], "");
    ::close(bv[0]);  // as the server does
  });
  http::ws::Socket browser(bv[1], http::ws::Role::kClient, 1 << 20);
  ASSERT_TRUE(nimbusd->send_binary("login: ").ok());
  auto m = browser.read();
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->kind, http::ws::Message::kBinary);
  EXPECT_EQ(m->data, "login: ");
  ASSERT_TRUE(browser.send_text("uname -m\n").ok());
  auto in = nimbusd->read();
  ASSERT_TRUE(in.ok()) << in.message();
  EXPECT_EQ(in->data, "uname -m\n");
  // More than 64 KiB from the browser: closed with 1009, and the host's side ends too.
  ASSERT_TRUE(browser.send_binary(std::string(64 * 1024 + 1, 'x')).ok());
  auto closed = browser.read();
  ASSERT_TRUE(closed.ok()) << closed.message();
  EXPECT_EQ(closed->kind, http::ws::Message::kClose);
  EXPECT_EQ(closed->close_code, http::ws::kCloseTooBig);
  auto host_end = nimbusd->read();
  EXPECT_TRUE(!host_end.ok() || host_end->kind == http::ws::Message::kClose);
  relay.join();
  reply.reset();
  EXPECT_EQ(console->terminals(), 0u);

  // A terminal ends with its session: signing out (or expiry) closes it with 1008 within
  // about a second, the host's side too.
  auto again = console->handle(ws_req("http://127.0.0.1:8773"));
  ASSERT_TRUE(again);
  ASSERT_EQ(again->status, 101) << again->body;
  int cv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, cv), 0);
  std::thread relay2([&] {
    again->upgrade(cv[0], "");
    ::close(cv[0]);
  });
  http::ws::Socket viewer(cv[1], http::ws::Role::kClient, 1 << 20);
  ASSERT_TRUE(nimbusd->send_binary("# ").ok());
  auto prompt = viewer.read();
  ASSERT_TRUE(prompt.ok()) << prompt.message();
  EXPECT_EQ(prompt->data, "# ");
  EXPECT_EQ(call("DELETE", "/console/api/session").status, 200);
  auto ended = viewer.read();
  ASSERT_TRUE(ended.ok()) << ended.message();
  EXPECT_EQ(ended->kind, http::ws::Message::kClose);
  EXPECT_EQ(ended->close_code, http::ws::kClosePolicy);
  auto host_gone = nimbusd->read();
  EXPECT_TRUE(!host_gone.ok() || host_gone->kind == http::ws::Message::kClose);
  relay2.join();
  again.reset();
  EXPECT_EQ(console->terminals(), 0u);
}

// The console on the real server: the page's calls over TCP, the event stream's head
// (200, text/event-stream) and its first event, while other requests are served.
TEST_F(ConsoleTest, OverTheRealServer) {
  auto server = CloudServer::bind("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.message();
  Ec2Api api(bed.cloud(), bed.driver(), creds());
  (*server)->serve(bed.cloud(), api, console.get());
  const std::string base = fmt::format("http://127.0.0.1:{}", (*server)->port());
  auto client = http::Client::create(base);
  ASSERT_TRUE(client.ok());
  client->options().headers.emplace_back("X-Nimbus-Console", "1");
  auto wrong = client->request("POST", "/console/api/session",
                               json{{"access_key", kKey}, {"secret", "nope"}}.dump());
  ASSERT_TRUE(wrong.ok()) << wrong.message();
  EXPECT_EQ(wrong->status, 401) << wrong->body;
  auto in = console->sessions().sign_in(kKey, kSecret);
  ASSERT_TRUE(in.ok());
  const std::string token = *in;
  auto fd = http::dial(client->target(), 2000, "test");
  ASSERT_TRUE(fd.ok()) << fd.message();
  const std::string get =
      "GET /console/api/events HTTP/1.1\r\nHost: x\r\nCookie: nimbus_console=" + token + "\r\n\r\n";
  ASSERT_EQ(::write(*fd, get.data(), get.size()), static_cast<ssize_t>(get.size()));
  std::string got;
  read_until(*fd, "event: instances\ndata: ", got);
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Content-Type: text/event-stream\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Security-Policy: "), std::string::npos) << got;
  EXPECT_NE(got.find("event: instances\ndata: "), std::string::npos) << got;
  // The stream holds its own thread only.
  client->options().headers.emplace_back("Cookie", "nimbus_console=" + token);
  auto ov = client->request("GET", "/console/api/overview");
  ASSERT_TRUE(ov.ok());
  EXPECT_EQ(ov->status, 200) << ov->body;
  auto health = client->request("GET", "/nimbus/v1/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
  ::close(*fd);
  (*server)->stop();
}

}  // namespace
}  // namespace nimbus::cloud
