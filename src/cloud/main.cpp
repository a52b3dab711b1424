// nimbus-cloud: the control plane of one region (docs/cloud.md). Serves the EC2 Query API
// and the hosts' join endpoint, keeps state in an embedded SQLite store or on an etcd
// cluster (--store), and drives the hosts (nimbusd) through their API.
#include <fmt/format.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include "cloud/cloud.h"
#include "cloud/cloud_server.h"
#include "cloud/console_api.h"
#include "cloud/custom_images.h"
#include "cloud/ec2_api.h"
#include "cloud/etcd_store.h"
#include "cloud/leader.h"
#include "cloud/reconciler.h"
#include "cloud/regions.h"
#include "cloud/sqlite_store.h"
#include "common/log.h"
#include "common/signal_stopper.h"
#include "config/vm_config.h"

namespace {

int usage(const std::string& m) {
  std::fprintf(stderr, "nimbus-cloud: %s\n", m.c_str());
  return 2;
}

// The join token: read from the file, or made (32 random hex bytes, mode 0600) when the
// file does not exist yet.
nimbus::Result<std::string> join_token(const std::string& path) {
  std::ifstream in(path);
  std::string token;
  if (in) {
    std::getline(in, token);
    if (token.size() < 16)
      return nimbus::Status::invalid_argument(
          fmt::format("--join-token-file '{}': a token of at least 16 characters", path));
    return token;
  }
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return nimbus::Status::internal("no random bytes");
  for (unsigned char b : bytes) token += fmt::format("{:02x}", b);
  const mode_t old = ::umask(077);
  std::ofstream out(path);
  ::umask(old);
  out << token << "\n";
  if (!out)
    return nimbus::Status::invalid_argument(fmt::format("cannot write the join token to {}", path));
  return token;
}

nimbus::Result<nimbus::cloud::ApiCredentials> read_credentials(const std::string& path) {
  nimbus::cloud::ApiCredentials c;
  if (path.empty()) return c;
  std::ifstream in(path);
  if (!in) return nimbus::Status::invalid_argument("--credentials '" + path + "': cannot read");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string key, secret;
    if (!(words >> key >> secret))
      return nimbus::Status::invalid_argument(
          fmt::format("--credentials {}:{}: expected ACCESS_KEY_ID SECRET_ACCESS_KEY", path, n));
    c.keys[key] = secret;
  }
  if (c.keys.empty())
    return nimbus::Status::invalid_argument("--credentials '" + path + "' holds no key");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"nimbus-cloud: an EC2-compatible control plane over nimbusd hosts (docs/cloud.md)"};
  app.set_version_flag("--version", std::string("nimbus-cloud 0.1.0"));
  nimbus::cloud::CloudOptions o;
  std::string listen = "127.0.0.1:8773", state_dir = "/var/lib/nimbus-cloud", zones = "a,b,c",
              token_file, credentials_file, strategy = "spread", images, types_file,
              log_level = "info", endpoint, regions_file;
  double host_timeout_s = 6;  // three missed heartbeats (every 2 s): down within 10 s
  app.add_option("--listen", listen, "The API's ADDRESS:PORT")->capture_default_str();
  app.add_option("--state-dir", state_dir, "Where the store (cloud.db) lives")
      ->capture_default_str();
  std::string store_url;
  app.add_option("--store", store_url,
                 "The state store: etcd://HOST:PORT[,HOST:PORT...] (an etcd v3 cluster's "
                 "members); default: SQLite in STATE_DIR/cloud.db");
  app.add_option("--region", o.region, "The region this control plane serves")
      ->capture_default_str();
  app.add_option("--zones", zones, "Its availability zones: letters (a,b) or full names")
      ->capture_default_str();
  app.add_option("--join-token-file", token_file,
                 "The token hosts join with (made if missing; default STATE_DIR/join-token)");
  app.add_option("--credentials", credentials_file,
                 "File of 'ACCESS_KEY_ID SECRET' lines: verify SigV4 (default: accept any key)");
  app.add_option("--strategy", strategy, "Placement weigher: spread or pack")
      ->capture_default_str();
  app.add_option("--host-timeout", host_timeout_s,
                 "Seconds without a heartbeat before a host is down")
      ->capture_default_str();
  app.add_option("--public-prefix", o.public_prefix,
                 "Public addresses: host K's pool is PREFIX.K.0/24")
      ->capture_default_str();
  app.add_option("--images", images, "The default image's directory (default: bundled images/)");
  app.add_option("--instance-types", types_file, "A JSON catalogue replacing the default types");
  app.add_option("--account-id", o.account_id, "The owner id shown on resources")
      ->capture_default_str();
  app.add_option("--endpoint-url", endpoint, "The URL clients use (default http://LISTEN)");
  app.add_option("--regions-file", regions_file,
                 "Every region of the cloud and its endpoint, this one included: JSON or "
                 "'NAME ENDPOINT' lines (default: this region alone)");
  std::string replica_id;
  app.add_option("--replica-id", replica_id,
                 "This replica's name among the control planes sharing an etcd store (default: "
                 "HOSTNAME:PORT of --listen)");
  double console_ttl_s = 3600;
  app.add_option("--console-session-ttl", console_ttl_s,
                 "Seconds a web console sign-in lasts (/console; needs --credentials)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, std::string(nimbus::log::kLevels))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "nimbus-cloud: %s\nRun 'nimbus-cloud --help' for usage.\n", e.what());
    return 2;
  }
  if (auto s = nimbus::log::init("nimbus-cloud", log_level); !s.ok())
    return usage("--log-level: " + s.message());
  if (strategy == "spread") {
    o.strategy = nimbus::cloud::Strategy::kSpread;
  } else if (strategy == "pack") {
    o.strategy = nimbus::cloud::Strategy::kPack;
  } else {
    return usage("--strategy must be spread or pack");
  }
  if (!(console_ttl_s >= 60 && console_ttl_s <= 7 * 86400))
    return usage("--console-session-ttl must be 60 to 604800 seconds");
  if (!(host_timeout_s >= 1 && host_timeout_s <= 3600))
    return usage("--host-timeout must be 1 to 3600 seconds");
  o.host_timeout = std::chrono::milliseconds(static_cast<int64_t>(host_timeout_s * 1000));
  std::stringstream zs(zones);
  for (std::string z; std::getline(zs, z, ',');) {
    if (z.size() == 1 && z[0] >= 'a' && z[0] <= 'z') z = o.region + z;
    if (z.empty() || z.size() > 64) return usage("--zones: bad zone '" + z + "'");
    o.zones.push_back(z);
  }
  if (o.zones.empty()) return usage("--zones: at least one zone");
  if (!types_file.empty()) {
    auto t = nimbus::cloud::load_instance_types(types_file);
    if (!t.ok()) return usage("--instance-types: " + t.message());
    o.instance_types = *t;
  }
  if (!regions_file.empty()) {
    auto r = nimbus::cloud::load_regions_file(regions_file);
    if (!r.ok()) return usage("--regions-file: " + r.message());
    if (std::none_of(r->begin(), r->end(), [&](const auto& e) { return e.name == o.region; }))
      return usage(fmt::format("--regions-file '{}' does not list this region ({})", regions_file,
                               o.region));
    o.regions = *r;
  }
  auto creds = read_credentials(credentials_file);
  if (!creds.ok()) return usage(creds.message());
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return usage(fmt::format("--state-dir {}: {}", state_dir, ec.message()));
  if (token_file.empty()) token_file = state_dir + "/join-token";
  auto token = join_token(token_file);
  if (!token.ok()) return usage(token.message());
  o.join_token = *token;
  if (images.empty()) images = nimbus::config::bundled_images_dir();

  auto server = nimbus::cloud::CloudServer::bind(listen);
  if (!server.ok()) return usage(server.message());
  if (replica_id.empty()) {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) std::snprintf(name, sizeof name, "localhost");
    replica_id = fmt::format("{}:{}", name, (*server)->port());
  }
  if (replica_id.size() > 255) return usage("--replica-id: at most 255 characters");
  o.replica_id = replica_id;
  o.endpoint_url = endpoint.empty() ? fmt::format("http://{}", listen) : endpoint;
  if (!endpoint.empty() && endpoint.back() == '/') o.endpoint_url.pop_back();

  nimbus::Result<std::unique_ptr<nimbus::cloud::Store>> store =
      nimbus::Status::invalid_argument("no store");
  if (store_url.empty()) {
    store = nimbus::cloud::open_sqlite_store(state_dir + "/cloud.db");
  } else {
    auto members = nimbus::cloud::parse_etcd_url(store_url);
    if (!members.ok()) return usage("--store: " + members.message());
    nimbus::cloud::EtcdOptions eo;
    eo.endpoints = *members;
    store = nimbus::cloud::open_etcd_store(eo);
  }
  if (!store.ok()) {
    spdlog::critical("{}", store.message());
    return 1;
  }
  nimbus::cloud::Cloud cloud(**store, o);
  if (auto s = cloud.init(); !s.ok()) {
    spdlog::critical("{}", s.message());
    return 1;
  }
  auto image = cloud.register_image_dir(images, "nimbus-linux-riscv64",
                                        "Nimbus's bundled RISC-V Linux (busybox)");
  if (!image.ok()) {
    spdlog::critical("default image: {}", image.error().message);
    return 1;
  }
  nimbus::cloud::NimbusdDriver driver;
  nimbus::cloud::Ec2Api api(cloud, driver, *creds);
  nimbus::cloud::Reconciler reconciler(cloud, driver, o.endpoint_url + "/nimbus/v1/images/");
  // CreateImage's images: exported on their instance's host, their files kept here.
  nimbus::cloud::ImageBuilder image_builder(cloud, driver, state_dir + "/images");
  // The background work runs on the leader alone (docs/cloud.md, "Replicas and
  // leadership"); every replica serves the whole API.
  std::mutex leading_mu;
  auto lead = [&](bool leader) {
    std::lock_guard<std::mutex> lock(leading_mu);
    if (leader) {
      spdlog::info("replica {} leads: the reconciler and image builder run here", replica_id);
      reconciler.start();
      image_builder.start();
    } else {
      spdlog::info("replica {} no longer leads: its reconciler and image builder stop", replica_id);
      image_builder.stop();
      reconciler.stop();
    }
    cloud.set_leader(leader);
  };
  std::unique_ptr<nimbus::cloud::LeaderElector> elector;
  if (store_url.empty()) {
    lead(true);  // SQLite: one control plane host, nobody to elect against
  } else {
    elector = std::make_unique<nimbus::cloud::LeaderElector>(**store, "/leader", replica_id,
                                                             std::chrono::seconds(3), lead);
    elector->start();
  }
  // The web console (/console): sessions against the same credentials as the API.
  nimbus::cloud::ConsoleOptions console_options;
  console_options.session_ttl = std::chrono::seconds(static_cast<int64_t>(console_ttl_s));
  nimbus::cloud::Console console(cloud, driver, *creds, console_options);
  console.start();
  (*server)->serve(cloud, api, &console);
  spdlog::info(
      "serving region {} ({}) on {} as replica {}; store {}; default image {}; join "
      "token in {}",
      o.region, fmt::join(o.zones, ", "), o.endpoint_url, replica_id, (*store)->describe(),
      image->id, token_file);

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  nimbus::SignalStopper signals([&] {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return stop; });
  spdlog::info("stopping");
  if (elector) elector->stop();  // steps down: another replica takes over at once
  image_builder.stop();
  reconciler.stop();
  (*server)->stop();  // the console's streams end with their connections
  console.stop();
  return 0;
}
