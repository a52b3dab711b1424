#include "cli/cloud_regions.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>

#include "cli/host_output.h"
#include "cloud/regions.h"
#include "common/http_client.h"

namespace nimbus::cli {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr const char* kNone = "--";
constexpr size_t kMaxHealthReply = 64 * 1024;
constexpr int kMaxFailures = 2;  // a region is not tried again after this many

// Text from the network goes to a terminal: no control characters, bounded length.
std::string clean(const std::string& s, size_t max = 120) {
  std::string out;
  for (char c : s.substr(0, max))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

bool less_latency(const RegionLatency& a, const RegionLatency& b) {
  const LatencySummary x = summarize(a), y = summarize(b);
  if (x.reachable != y.reachable) return x.reachable;
  if (x.reachable) {
    if (x.median_ms != y.median_ms) return x.median_ms < y.median_ms;
    if (x.connect_median_ms != y.connect_median_ms)
      return x.connect_median_ms < y.connect_median_ms;
  }
  return a.region.name < b.region.name;
}

// ------------------------------------------------------------------------------------------
// One sample: connect, GET /nimbus/v1/health, the whole reply.

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` until the deadline: false at the deadline or on a poll error.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

struct Sample {
  bool ok = false;
  double connect_ms = 0, request_ms = 0;
  std::string error;
};

Sample fail_sample(std::string why) {
  Sample s;
  s.error = std::move(why);
  return s;
}

// Whether `reply` (what was read so far) is a whole HTTP reply: its head and, when it
// gives a Content-Length, that many bytes of body (otherwise the body runs to EOF).
bool reply_complete(const std::string& reply) {
  const size_t head_end = reply.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::string head = reply.substr(0, head_end);
  std::transform(head.begin(), head.end(), head.begin(), ::tolower);
  const size_t at = head.find("\r\ncontent-length:");
  if (at == std::string::npos) return false;
  const size_t length = std::strtoul(head.c_str() + at + 17, nullptr, 10);
  return reply.size() >= head_end + 4 + length;
}

Sample take_sample(const sockaddr_storage& address, socklen_t address_len,
                   const std::string& host_header, const std::string& region, int timeout_ms) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + std::chrono::milliseconds(timeout_ms);
  Socket s(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (s.get() < 0) return fail_sample(fmt::format("socket: {}", std::strerror(errno)));
  int err =
      ::connect(s.get(), reinterpret_cast<const sockaddr*>(&address), address_len) == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    if (!wait_for(s.get(), POLLOUT, deadline))
      return fail_sample(fmt::format("no connection within {} ms", timeout_ms));
    socklen_t len = sizeof(err);
    if (::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  }
  if (err != 0) return fail_sample(fmt::format("cannot connect: {}", std::strerror(err)));
  const Clock::time_point connected = Clock::now();
  const int one = 1;
  ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  const std::string request = fmt::format(
      "GET /nimbus/v1/health HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n"
      "Connection: close\r\n\r\n",
      host_header);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(s.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(s.get(), POLLOUT, deadline))
        return fail_sample(fmt::format("no reply within {} ms", timeout_ms));
    } else {
      return fail_sample(fmt::format("sending: {}", std::strerror(errno)));
    }
  }
  std::string reply;
  char buf[8192];
  while (!reply_complete(reply)) {
    if (!wait_for(s.get(), POLLIN, deadline))
      return fail_sample(fmt::format("no whole reply within {} ms", timeout_ms));
    const ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
    if (n > 0) {
      reply.append(buf, static_cast<size_t>(n));
      if (reply.size() > kMaxHealthReply) return fail_sample("the reply is too large");
    } else if (n == 0) {
      break;  // the end: a reply without Content-Length, or a cut one (checked below)
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return fail_sample(fmt::format("reading: {}", std::strerror(errno)));
    }
  }
  const Clock::time_point done = Clock::now();
  if (reply.rfind("HTTP/1.", 0) != 0 || reply.size() < 12)
    return fail_sample("the reply is not HTTP");
  if (reply.compare(9, 3, "200") != 0)
    return fail_sample(fmt::format("GET /nimbus/v1/health: HTTP {}", clean(reply.substr(9, 3))));
  const size_t head_end = reply.find("\r\n\r\n");
  const json body = head_end == std::string::npos
                        ? json()
                        : json::parse(reply.substr(head_end + 4), nullptr, false);
  const std::string answered = json_str(body, "region");
  if (answered != region)
    return fail_sample(
        fmt::format("the endpoint answers for region '{}', not {}", clean(answered, 64), region));
  Sample out;
  out.ok = true;
  out.connect_ms = ms_between(start, connected);
  out.request_ms = ms_between(connected, done);
  return out;
}

// Where one region is measured: its address (resolved once, outside the timings).
struct ProbeTarget {
  sockaddr_storage address{};
  socklen_t address_len = 0;
  std::string host_header;
  std::string error;  // set: not measurable
};

ProbeTarget probe_target(const CloudRegion& r) {
  ProbeTarget t;
  if (r.endpoint.rfind("https://", 0) == 0) {
    t.error = "https:// endpoints are not measured";
    return t;
  }
  auto target = http::parse_target(r.endpoint);
  if (!target.ok() || target->unix_socket) {
    t.error = "not an http://HOST:PORT endpoint";
    return t;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(target->port);
  if (const int rc = ::getaddrinfo(target->host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    t.error = fmt::format("cannot resolve {}: {}", clean(target->host, 64),
                          rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc));
    return t;
  }
  std::memcpy(&t.address, res->ai_addr, res->ai_addrlen);
  t.address_len = res->ai_addrlen;
  ::freeaddrinfo(res);
  t.host_header = target->host.find(':') != std::string::npos
                      ? fmt::format("[{}]:{}", target->host, target->port)
                      : fmt::format("{}:{}", target->host, target->port);
  return t;
}

int fail(const std::string& message, int status = kExitFailed) {
  std::fprintf(stderr, "nimbus: cloud regions: %s\n", message.c_str());
  return status;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Pure parts

Result<std::vector<CloudRegion>> regions_from_json(const json& reply) {
  const auto bad = [](const std::string& why) {
    return Status::internal("GET /nimbus/v1/regions: " + why);
  };
  if (!reply.is_object()) return bad("not a JSON object");
  auto it = reply.find("regions");
  if (it == reply.end() || !it->is_array()) return bad("no 'regions' list");
  if (it->empty()) return bad("an empty 'regions' list");
  if (it->size() > 200) return bad("more than 200 regions");
  std::vector<CloudRegion> out;
  std::set<std::string> names;
  for (const json& r : *it) {
    const std::string name = json_str(r, "name");
    if (!cloud::valid_region_name(name))
      return bad(fmt::format("'{}' is not a region name", clean(name, 64)));
    if (!names.insert(name).second) return bad(fmt::format("region {} is listed twice", name));
    auto endpoint = cloud::check_region_endpoint(json_str(r, "endpoint"));
    if (!endpoint.ok()) return bad(fmt::format("region {}: {}", name, endpoint.message()));
    out.push_back({name, *endpoint});
  }
  return out;
}

std::optional<double> median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  return v.size() % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

LatencySummary summarize(const RegionLatency& r) {
  LatencySummary s;
  s.samples = static_cast<int>(r.request_ms.size());
  s.failures = r.failures;
  if (auto m = median(r.request_ms)) {
    s.reachable = true;
    s.median_ms = *m;
    s.min_ms = *std::min_element(r.request_ms.begin(), r.request_ms.end());
    s.max_ms = *std::max_element(r.request_ms.begin(), r.request_ms.end());
    s.connect_median_ms = median(r.connect_ms).value_or(0);
  }
  return s;
}

void sort_by_latency(std::vector<RegionLatency>& regions) {
  std::stable_sort(regions.begin(), regions.end(), less_latency);
}

std::optional<size_t> closest_region(const std::vector<RegionLatency>& regions) {
  std::optional<size_t> best;
  for (size_t i = 0; i < regions.size(); ++i) {
    if (!summarize(regions[i]).reachable) continue;
    if (!best || less_latency(regions[i], regions[*best])) best = i;
  }
  return best;
}

Result<CloudRegion> find_region(const std::vector<CloudRegion>& list, const std::string& name) {
  std::string names;
  for (const CloudRegion& r : list) {
    if (r.name == name) return r;
    names += (names.empty() ? "" : ", ") + r.name;
  }
  return Status::invalid_argument(
      fmt::format("no region '{}' (the regions: {})", clean(name, 64), names));
}

std::string format_ms(double ms) {
  if (!(ms >= 0.01)) return "0.01 ms";
  if (ms >= 100) return fmt::format("{:.0f} ms", ms);
  if (ms >= 10) return fmt::format("{:.1f} ms", ms);
  return fmt::format("{:.2f} ms", ms);
}

std::string format_cloud_regions(const std::vector<CloudRegion>& list, const std::string& asked) {
  Table t({"Region", "Endpoint"});
  for (const CloudRegion& r : list)
    t.add_row({r.name == asked ? r.name + " *" : r.name, clean(r.endpoint)});
  return t.render();
}

std::string format_region_latencies(const std::vector<RegionLatency>& regions) {
  Table t({"Region", "Endpoint", "Median", "Min", "Max", "Connect", "Samples"});
  for (const RegionLatency& r : regions) {
    const LatencySummary s = summarize(r);
    const std::string count = fmt::format("{}/{}", s.samples, s.samples + s.failures);
    if (!s.reachable) {
      t.add_row({r.region.name, clean(r.region.endpoint), kNone, kNone, kNone, kNone, count});
      continue;
    }
    t.add_row({r.region.name, clean(r.region.endpoint), format_ms(s.median_ms), format_ms(s.min_ms),
               format_ms(s.max_ms), format_ms(s.connect_median_ms), count});
  }
  return t.render();
}

std::string format_region_export(const CloudRegion& r) {
  return fmt::format(
      "  export AWS_DEFAULT_REGION={}\n  aws --endpoint-url {} ec2 describe-instances\n", r.name,
      clean(r.endpoint));
}

json regions_json(const std::string& asked, const std::vector<CloudRegion>& list,
                  const std::vector<RegionLatency>* latencies) {
  json out = {{"region", asked}, {"regions", json::array()}};
  if (!latencies) {
    for (const CloudRegion& r : list)
      out["regions"].push_back({{"name", r.name}, {"endpoint", r.endpoint}});
    return out;
  }
  for (const RegionLatency& r : *latencies) {
    const LatencySummary s = summarize(r);
    json l = {{"reachable", s.reachable},
              {"samples", s.samples},
              {"failures", s.failures},
              {"request_ms", r.request_ms},
              {"connect_ms", r.connect_ms}};
    if (s.reachable) {
      l["median_ms"] = s.median_ms;
      l["min_ms"] = s.min_ms;
      l["max_ms"] = s.max_ms;
      l["connect_median_ms"] = s.connect_median_ms;
    }
    if (!r.error.empty()) l["error"] = r.error;
    out["regions"].push_back(
        {{"name", r.region.name}, {"endpoint", r.region.endpoint}, {"latency", l}});
  }
  if (auto best = closest_region(*latencies)) out["closest"] = (*latencies)[*best].region.name;
  return out;
}

// ------------------------------------------------------------------------------------------
// Measuring

Result<std::vector<CloudRegion>> fetch_regions(const std::string& url, std::string* asked) {
  http::ClientOptions o;
  o.connect_timeout_ms = 2000;
  o.read_timeout_ms = 10000;
  o.max_reply_body = 1 << 20;
  o.peer = "the control plane";
  auto client = http::Client::create(url, o);
  if (!client.ok()) return client.status();
  if (client->target().unix_socket) return Status::invalid_argument("give an http:// URL");
  auto reply = client->request("GET", "/nimbus/v1/regions");
  if (!reply.ok()) {
    if (reply.status().message().rfind("cannot reach ", 0) == 0)
      return Status(reply.status().code(),
                    reply.status().message() + " (is it up? start it with `nimbus cloud up`)");
    return reply.status();
  }
  if (!http::is_success(*reply)) return http::reply_error(*reply);
  const json j = json::parse(reply->body, nullptr, false);
  auto list = regions_from_json(j);
  if (!list.ok()) return list.status();
  if (asked) *asked = clean(json_str(j, "region"), 64);
  return list;
}

std::vector<RegionLatency> measure_regions(const std::vector<CloudRegion>& list, int samples,
                                           int timeout_ms) {
  std::vector<RegionLatency> out;
  std::vector<ProbeTarget> targets;
  for (const CloudRegion& r : list) {
    out.push_back({r, {}, {}, 0, ""});
    targets.push_back(probe_target(r));
    if (!targets.back().error.empty()) {
      out.back().error = targets.back().error;
      out.back().failures = 1;
    }
  }
  for (int round = 0; round < samples; ++round) {
    for (size_t i = 0; i < out.size(); ++i) {
      if (!targets[i].error.empty() || out[i].failures >= kMaxFailures) continue;
      Sample s = take_sample(targets[i].address, targets[i].address_len, targets[i].host_header,
                             out[i].region.name, timeout_ms);
      if (s.ok) {
        out[i].connect_ms.push_back(s.connect_ms);
        out[i].request_ms.push_back(s.request_ms);
      } else {
        out[i].failures++;
        out[i].error = s.error;
      }
    }
  }
  return out;
}

Result<CloudRegion> choose_region(const std::string& url, const std::string& region, int samples,
                                  std::optional<LatencySummary>* latency) {
  if (region != "auto" && !cloud::valid_region_name(region))
    return Status::invalid_argument(
        fmt::format("--region '{}': give a region's name or auto", clean(region, 64)));
  auto list = fetch_regions(url, nullptr);
  if (!list.ok()) return list.status();
  if (region != "auto") return find_region(*list, region);
  std::vector<RegionLatency> measured = measure_regions(*list, samples);
  auto best = closest_region(measured);
  if (!best) {
    std::string why;
    for (const RegionLatency& r : measured)
      why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", r.region.name, r.error);
    return Status::unavailable("no region answered (" + why + ")");
  }
  if (latency) *latency = summarize(measured[*best]);
  return measured[*best].region;
}

int cloud_regions_verb(const std::string& url, const std::string& region, bool latency, int samples,
                       bool as_json) {
  if (samples < 1 || samples > 100) return fail("--samples must be 1 to 100", kExitUsage);
  if (!region.empty() && region != "auto" && !cloud::valid_region_name(region))
    return fail(fmt::format("--region '{}': give a region's name or auto", clean(region, 64)),
                kExitUsage);
  std::string asked;
  auto list = fetch_regions(url, &asked);
  if (!list.ok()) return fail(list.message());
  std::optional<CloudRegion> chosen;
  if (!region.empty() && region != "auto") {
    auto r = find_region(*list, region);
    if (!r.ok()) return fail(r.message(), kExitUsage);
    chosen = *r;
  }
  if (!latency && region != "auto") {
    if (as_json) {
      json j = regions_json(asked, *list, nullptr);
      if (chosen) j["chosen"] = chosen->name;
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::fputs(format_cloud_regions(*list, asked).c_str(), stdout);
    if (chosen)
      std::printf("Region %s:\n%s", chosen->name.c_str(), format_region_export(*chosen).c_str());
    return 0;
  }
  std::vector<RegionLatency> measured = measure_regions(*list, samples);
  sort_by_latency(measured);
  auto best = closest_region(measured);
  if (!chosen && best) chosen = measured[*best].region;
  if (as_json) {
    json j = regions_json(asked, *list, &measured);
    if (chosen) j["chosen"] = chosen->name;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::fputs(format_region_latencies(measured).c_str(), stdout);
    for (const RegionLatency& r : measured) {
      if (!summarize(r).reachable)
        std::fprintf(stderr, "warning: %s: %s\n", r.region.name.c_str(), clean(r.error).c_str());
    }
    if (best) {
      const LatencySummary s = summarize(measured[*best]);
      const bool is_chosen = chosen && chosen->name == measured[*best].region.name;
      std::printf("Closest: %s (median %s over %d sample%s)%s\n",
                  measured[*best].region.name.c_str(), format_ms(s.median_ms).c_str(), s.samples,
                  s.samples == 1 ? "" : "s", is_chosen ? ":" : "");
      if (is_chosen) std::fputs(format_region_export(*chosen).c_str(), stdout);
    }
    if (chosen && (!best || chosen->name != measured[*best].region.name))
      std::printf("Region %s:\n%s", chosen->name.c_str(), format_region_export(*chosen).c_str());
  }
  if (!best) return fail("no region answered");
  return 0;
}

}  // namespace nimbus::cli
