// nimbusd: the host daemon. Manages the VMs of one host (docs/nimbusd.md).
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>

#include "common/http_client.h"
#include "common/http_listen.h"
#include "common/log.h"
#include "common/signal_stopper.h"
#include "common/size.h"
#include "config/vm_config.h"
#include "host/cloud_join.h"
#include "host/daemon.h"
#include "host/host_server.h"
#include "host/vm_network.h"

namespace {

int fail(const std::string& message) {
  spdlog::critical("{}", message);
  return 1;
}

nimbus::Result<uint64_t> mib_of(const std::string& flag, const std::string& text) {
  auto bytes = nimbus::parse_size(text);
  if (!bytes.ok())
    return nimbus::Status::error(fmt::format("{} '{}': {}", flag, text, bytes.message()));
  // Plain numbers mean MiB here, as in the rest of the host API.
  const bool plain = text.find_first_not_of("0123456789") == std::string::npos;
  return plain ? *bytes : *bytes >> 20;
}

// The first line of `path`: a token, checked as a header value must be.
nimbus::Result<std::string> read_token(const std::string& flag, const std::string& path,
                                       size_t min_size) {
  std::ifstream in(path);
  std::string token;
  if (!in || !std::getline(in, token) || token.size() < min_size ||
      token.find_first_of(" \t\r\x7f") != std::string::npos ||
      std::any_of(token.begin(), token.end(), [](char c) { return c >= 0 && c < 0x20; })) {
    return nimbus::Status::invalid_argument(
        fmt::format("{} '{}': cannot read a token{} (its first line, without spaces)", flag, path,
                    min_size > 1 ? fmt::format(" of at least {} characters", min_size) : ""));
  }
  return token;
}

// The default --host-id: the hostname, lower case, up to its first dot.
std::string default_host_id() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  std::string id = name;
  id = id.substr(0, id.find('.'));
  for (char& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return id;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"nimbusd: the Nimbus host daemon (many VMs on one host; API: docs/nimbusd.md)"};
  app.set_version_flag("--version", std::string("nimbusd 0.1.0"));
  nimbus::host::DaemonOptions o;
  std::string socket = "/run/nimbus/nimbusd.sock", listen, token_file, reserved_memory = "1G",
              overhead = "64M", reserved_disk = "10G", memory, disk;
  unsigned cpus = 0;
  bool no_sandbox = false;
  std::string log_level = "info";
  app.add_option("--state-dir", o.state_dir, "Where VMs, images and the database live")
      ->capture_default_str();
  app.add_option("--socket", socket, "The API's unix socket")->capture_default_str();
  app.add_option("--listen", listen, "Also serve the API on TCP ADDRESS:PORT (needs --token-file)");
  app.add_option("--token-file", token_file, "File holding the bearer token the TCP API requires");
  app.add_option("--cpu-overcommit", o.policy.cpu_overcommit, "vCPUs allocatable per host CPU")
      ->capture_default_str();
  app.add_option("--reserved-memory", reserved_memory, "Host memory kept for the host itself")
      ->capture_default_str();
  app.add_option("--vm-overhead", overhead,
                 "Memory counted per VM on top of its RAM (also its cgroup's margin)")
      ->capture_default_str();
  app.add_option("--reserved-disk", reserved_disk, "Disk space kept free for the host")
      ->capture_default_str();
  app.add_option("--cpus", cpus, "Host CPUs to count (default: detected)");
  app.add_option("--memory", memory, "Host memory to count, e.g. 16G (default: detected)");
  app.add_option("--disk", disk,
                 "Disk capacity for VMs, e.g. 100G (default: the state directory's file system)");
  app.add_flag("--no-sandbox", no_sandbox, "Run VMM processes as root without a seccomp filter");
  app.add_option("--vmm", o.vmm_exe,
                 "The nimbus binary that runs each VM (default: beside nimbusd)");
  app.add_option("--images", o.bundled_images,
                 "Bundled images imported as 'default' (default: images/)");
  app.add_option("--cgroup-parent", o.cgroup_parent, "Name of the parent cgroup of the VMs")
      ->capture_default_str();
  std::string cloud, zone, join_token_file, host_id, advertise;
  app.add_option("--cloud", cloud,
                 "Join the control plane at http://HOST:PORT, or its replicas' URLs "
                 "comma-separated (needs --zone, --join-token-file, --listen and --token-file)");
  app.add_option("--zone", zone, "With --cloud: this host's availability zone, e.g. us-east-1a");
  app.add_option("--join-token-file", join_token_file,
                 "With --cloud: file holding the control plane's join token");
  app.add_option("--host-id", host_id,
                 "With --cloud: this host's id, 1-63 of a-z 0-9 - (default: the hostname)");
  app.add_option("--advertise", advertise,
                 "With --cloud: the URL the control plane reaches the TCP API at (default: "
                 "http://LISTEN)");
  app.add_option("--tunnel-listen", o.tunnel_listen,
                 "UDP IPv4:PORT of the tunnel that links this host's private networks with "
                 "other hosts' (off by default)");
  app.add_option("--tunnel-advertise", o.tunnel_advertise,
                 "With --tunnel-listen: the IPv4:PORT other hosts send to, if not that one");
  app.add_option("--log-level", log_level,
                 fmt::format("Least level logged to stderr ({})", nimbus::log::kLevels))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "nimbusd: %s\nRun 'nimbusd --help' for usage.\n", e.what());
    return 2;
  }
  auto usage = [](const std::string& m) {
    std::fprintf(stderr, "nimbusd: %s\n", m.c_str());
    return 2;
  };
  if (nimbus::Status s = nimbus::log::init("nimbusd", log_level); !s.ok())
    return usage("--log-level: " + s.message());
  for (auto [flag, text, out] :
       {std::tuple{"--reserved-memory", &reserved_memory, &o.policy.reserved_memory_mib},
        std::tuple{"--vm-overhead", &overhead, &o.policy.vm_overhead_mib},
        std::tuple{"--reserved-disk", &reserved_disk, &o.policy.reserved_disk_mib}}) {
    auto v = mib_of(flag, *text);
    if (!v.ok()) return usage(v.message());
    *out = *v;
  }
  if (!memory.empty()) {
    auto v = mib_of("--memory", memory);
    if (!v.ok()) return usage(v.message());
    o.policy.memory_mib_override = *v;
  }
  if (!disk.empty()) {
    auto v = mib_of("--disk", disk);
    if (!v.ok()) return usage(v.message());
    o.policy.disk_mib_override = *v;
  }
  if (cpus != 0) o.policy.cpus_override = cpus;
  if (nimbus::Status s = nimbus::host::validate(o.policy); !s.ok()) return usage(s.message());
  o.sandbox = !no_sandbox;
  std::error_code ec;
  if (o.vmm_exe.empty()) {
    o.vmm_exe =
        (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "nimbus").string();
  }
  if (::access(o.vmm_exe.c_str(), X_OK) != 0)
    return usage(fmt::format("--vmm '{}' is not an executable", o.vmm_exe));
  o.vmm_exe = std::filesystem::absolute(o.vmm_exe, ec).string();
  if (o.bundled_images.empty()) o.bundled_images = nimbus::config::bundled_images_dir();
  o.bundled_images = std::filesystem::absolute(o.bundled_images, ec).string();
  o.state_dir = std::filesystem::absolute(o.state_dir, ec).string();
  std::string token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in || !std::getline(in, token) || token.size() < 16) {
      return usage(fmt::format("--token-file '{}': cannot read a token of at least 16 characters",
                               token_file));
    }
  }
  if (!o.tunnel_advertise.empty() && o.tunnel_listen.empty())
    return usage("--tunnel-advertise needs --tunnel-listen");
  if (!o.tunnel_listen.empty()) {
    if (auto t = nimbus::backends::Tunnel::parse_endpoint(o.tunnel_listen, true); !t.ok())
      return usage("--tunnel-listen: " + t.message());
  }
  if (!o.tunnel_advertise.empty()) {
    if (auto t = nimbus::backends::Tunnel::parse_endpoint(o.tunnel_advertise); !t.ok())
      return usage("--tunnel-advertise: " + t.message());
  }
  if (!listen.empty() && token.empty())
    return usage("--listen needs --token-file: the TCP API always requires a token");
  std::string join_token, listen_host;
  if (cloud.empty()) {
    for (auto [flag, value] :
         {std::pair{"--zone", &zone}, std::pair{"--join-token-file", &join_token_file},
          std::pair{"--host-id", &host_id}, std::pair{"--advertise", &advertise}}) {
      if (!value->empty()) return usage(fmt::format("{} needs --cloud", flag));
    }
  } else {
    if (nimbus::Status s = nimbus::host::check_cloud_url(cloud); !s.ok())
      return usage("--cloud: " + s.message());
    if (cloud.back() == '/') cloud.pop_back();
    if (listen.empty()) {
      return usage(
          "--cloud needs --listen and --token-file: the control plane drives this host over the "
          "TCP API");
    }
    if (zone.empty()) return usage("--cloud needs --zone ZONE (e.g. us-east-1a)");
    if (!nimbus::host::valid_zone(zone)) {
      return usage(
          fmt::format("--zone '{}': use a-z 0-9 -, ending with a letter (us-east-1a)", zone));
    }
    if (join_token_file.empty()) return usage("--cloud needs --join-token-file");
    auto jt = read_token("--join-token-file", join_token_file, 1);
    if (!jt.ok()) return usage(jt.message());
    join_token = *jt;
    if (host_id.empty()) {
      host_id = default_host_id();
      if (!nimbus::host::valid_host_id(host_id)) {
        return usage(fmt::format(
            "the hostname gives the host id '{}', which is not 1-63 of a-z 0-9 - starting with a "
            "letter: pass --host-id",
            host_id));
      }
    } else if (!nimbus::host::valid_host_id(host_id)) {
      return usage(
          fmt::format("--host-id '{}': use 1-63 of a-z 0-9 -, starting with a letter", host_id));
    }
    if (!advertise.empty()) {
      if (nimbus::Status s = nimbus::host::check_cloud_url(advertise); !s.ok())
        return usage("--advertise: " + s.message());
    } else {
      auto addr = nimbus::http::parse_tcp_address("--listen", listen);
      if (!addr.ok()) return usage(addr.message());
      if (addr->host == "0.0.0.0" || addr->host == "::") {
        return usage(fmt::format(
            "--listen {} is every address: --cloud needs --advertise http://ADDRESS:PORT", listen));
      }
      listen_host = addr->host.find(':') != std::string::npos ? "[" + addr->host + "]" : addr->host;
    }
    o.cloud_url = cloud;
    o.cloud_token = join_token;
  }

  // An incoming migration's VMM listens where the source reaches this host: the host of
  // --listen, or of --advertise when --listen is every address.
  if (!listen.empty()) {
    auto addr = nimbus::http::parse_tcp_address("--listen", listen);
    if (addr.ok() && addr->host != "0.0.0.0" && addr->host != "::") {
      o.migration_host =
          addr->host.find(':') != std::string::npos ? "[" + addr->host + "]" : addr->host;
    } else if (!advertise.empty()) {
      auto t = nimbus::http::parse_target(advertise);
      if (t.ok() && !t->host.empty()) o.migration_host = t->host;
    }
  }

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  nimbus::SignalStopper signals([&] {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  });
  std::filesystem::create_directories(std::filesystem::path(socket).parent_path(), ec);
  // Both sockets are validated and bound before anything else starts: a bad --listen
  // fails at once (exit 2), with no thread to wait for.
  auto server = nimbus::host::HostServer::bind(socket, listen, token);
  if (!server.ok()) return usage(server.message());
  nimbus::host::Daemon daemon(o);
  if (nimbus::Status s = daemon.init(); !s.ok()) return fail(s.message());
  (*server)->serve(daemon);
  spdlog::info("{}", daemon.describe());
  spdlog::info("serving on {}{}", socket,
               listen.empty() ? ""
                              : fmt::format(" and {} (TCP port {}, token required)", listen,
                                            (*server)->tcp_port()));
  std::unique_ptr<nimbus::host::CloudJoin> join;
  if (!cloud.empty()) {
    nimbus::host::CloudJoinOptions j;
    j.cloud_url = cloud;
    j.join_token = join_token;
    j.host_id = host_id;
    j.zone = zone;
    j.api_url = !advertise.empty()
                    ? advertise
                    : fmt::format("http://{}:{}", listen_host, (*server)->tcp_port());
    j.api_token = token;
    j.tunnel_endpoint = daemon.tunnel_endpoint();
    if (!j.tunnel_endpoint.empty()) {
      j.on_tunnel_peers = [&daemon](const nlohmann::json& list) -> nimbus::Status {
        auto peers = nimbus::host::parse_tunnel_peers(list);
        if (!peers.ok()) return peers.status();
        return daemon.set_tunnel_peers(*peers).status();
      };
    }
    spdlog::info("joining cloud {} as {} in {} (API advertised at {})", cloud, host_id, zone,
                 j.api_url);
    join = std::make_unique<nimbus::host::CloudJoin>(
        j, [&daemon] { return nimbus::host::host_report(daemon); });
    if (nimbus::Status s = join->start(); !s.ok()) return fail(s.message());
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return stop; });
  }
  spdlog::info("stopping (VMs keep running; the next nimbusd re-adopts them)");
  join.reset();  // no heartbeat after this: the report reads the daemon
  server->reset();
  daemon.shutdown();
  return 0;
}
