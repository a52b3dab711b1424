#include "cli/host_commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <thread>

#include "cli/console_attach.h"
#include "cli/host_args.h"
#include "cli/host_client.h"
#include "cli/host_output.h"
#include "cli/host_progress.h"
#include "config/device_flags.h"
#include "config/vm_config.h"
#include "host/host_json.h"

namespace nimbus::cli {

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kDefaultReadyTimeout = 300;  // launch, start, restart: seconds to wait for ready
constexpr int kDefaultShellTimeout = 60;
constexpr int kApiStopTimeout = 30;  // the API's default graceful stop timeout

// "nimbus: VERB NAME: message" (or "nimbus: VERB: message" without a name).
int fail(const std::string& verb, const std::string& name, const std::string& message,
         int status = kExitFailed) {
  if (name.empty()) {
    std::fprintf(stderr, "nimbus: %s: %s\n", verb.c_str(), message.c_str());
  } else {
    std::fprintf(stderr, "nimbus: %s %s: %s\n", verb.c_str(), name.c_str(), message.c_str());
  }
  return status;
}

int usage(const std::string& verb, const std::string& message) {
  return fail(verb, "", message, kExitUsage);
}

void print_json(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

// What the verbs share: the options and a connected client.
struct Ctx {
  const HostCommandOptions& o;
  HostClient client;
};

bool is_live(const std::string& state) {
  return state == "running" || state == "starting" || state == "paused" || state == "stopping";
}

std::string vm_path(const std::string& name) { return "/v1/vms/" + name; }

// The failure of a VM that should have come up, with where to look.
std::string crash_message(const json& vm, const std::string& what) {
  std::string m = what;
  const std::string last_exit = json_str(vm, "last_exit");
  if (!last_exit.empty()) m += ": " + last_exit;
  const std::string log = json_str(vm, "console_log");
  if (!log.empty()) m += fmt::format("; see its console log {}", log);
  const std::string policy = json_str(vm, "restart_policy");
  if (!policy.empty() && policy != "no" && json_str(vm, "desired_state") == "running") {
    m += fmt::format(" (restart policy {}: nimbusd will start it again)", policy);
  }
  return m;
}

// Polls the VM until it is running with its guest ready (or paused). An error when it
// crashes, stops, disappears or the timeout passes.
Result<json> wait_ready(Ctx& c, const std::string& name, int timeout_s, Progress& progress) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  json vm;
  for (;;) {
    auto r = c.client.request("GET", vm_path(name));
    if (!r.ok()) return r.status();
    vm = *r;
    const std::string state = json_str(vm, "state");
    const json ready = vm.is_object() && vm.contains("ready") ? vm["ready"] : json();
    if (state == "running" && (!ready.is_boolean() || ready.get<bool>())) return vm;
    if (state == "paused") return vm;
    if (state == "crashed") return Status::error(crash_message(vm, "the VM crashed"));
    if (state == "stopped") return Status::error(crash_message(vm, "the VM stopped"));
    progress.set_state(state == "running" ? "waiting for the guest" : state);
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string m =
          fmt::format("not ready after {} s (state {}); it may still come up: check `nimbus list`",
                      timeout_s, state.empty() ? "unknown" : state);
      const std::string log = json_str(vm, "console_log");
      if (!log.empty()) m += fmt::format(" or its console log {}", log);
      return Status::error(m);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// Polls until the VM is no longer stopping.
Result<json> wait_stopped(Ctx& c, const std::string& name, int timeout_s, Progress& progress) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    auto r = c.client.request("GET", vm_path(name));
    if (!r.ok()) return r.status();
    const std::string state = json_str(*r, "state");
    if (state != "stopping") return *r;
    progress.set_state(state);
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::error(fmt::format("still stopping after {} s", timeout_s));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// "1 CPU, 256MiB, 1GiB disk, IPv4 10.88.0.2, forwards 8080->80".
std::string vm_summary(const json& vm) {
  std::string s;
  double cpus;
  if (json_num(vm, "cpus", cpus)) s += fmt::format("{} CPU{}", cpus, cpus == 1 ? "" : "s");
  double mib;
  if (json_num(vm, "memory_mib", mib)) s += (s.empty() ? "" : ", ") + format_mib(mib);
  if (json_num(vm, "disk_mib", mib)) s += (s.empty() ? "" : ", ") + format_mib(mib) + " disk";
  const std::string ip = format_ipv4(vm);
  if (ip != "--" && is_live(json_str(vm, "state"))) s += ", IPv4 " + ip;
  const std::string fw = format_forwards(vm);
  if (fw != "--") s += ", forwards " + fw;
  return s;
}

// Runs `one` for each name; the JSON results are printed together with --json (one object
// for one name, an array for several). Exit 1 if any failed.
int for_each_vm(Ctx& c, const std::vector<std::string>& names,
                const std::function<Result<json>(const std::string&)>& one) {
  json results = json::array();
  int status = 0;
  for (const std::string& name : names) {
    auto r = one(name);
    if (!r.ok()) {
      fail(c.o.verb, name, r.message());
      status = kExitFailed;
    } else {
      results.push_back(*r);
    }
  }
  if (c.o.json && !results.empty()) print_json(names.size() == 1 ? results[0] : results);
  return status;
}

void say(const Ctx& c, const std::string& text) {
  if (!c.o.json) std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

// ------------------------------------------------------------------------------------------

int cmd_launch(Ctx& c) {
  const HostCommandOptions& o = c.o;
  json req = json::object();
  if (!o.name.empty()) {
    if (Status s = check_name(o.name); !s.ok()) return usage("launch", "--name: " + s.message());
    req["name"] = o.name;
  }
  if (!o.image.empty()) {
    if (Status s = check_name(o.image, "image name"); !s.ok())
      return usage("launch", "--image: " + s.message());
    req["image"] = o.image;
  }
  if (o.cpus != -1) {
    if (o.cpus < 1 || o.cpus > static_cast<int>(config::kMaxVcpus)) {
      return usage("launch",
                   fmt::format("--cpus {} is out of range (1 to {})", o.cpus, config::kMaxVcpus));
    }
    req["cpus"] = o.cpus;
  }
  if (!o.memory.empty()) {
    auto mib = parse_mib(o.memory);
    if (!mib.ok()) return usage("launch", "--memory: " + mib.message());
    req["memory_mib"] = *mib;
  }
  if (!o.disk.empty()) {
    auto mib = parse_mib(o.disk);
    if (!mib.ok()) return usage("launch", "--disk: " + mib.message());
    req["disk_mib"] = *mib;
  }
  if (!o.forwards.empty()) {
    json forwards = json::array();
    for (const std::string& text : o.forwards) {
      auto f = config::parse_forward_flag(text);
      if (!f.ok()) return usage("launch", f.message());
      for (const json& other : forwards) {
        if (other["host_port"] == f->host_port && other["protocol"] == f->protocol) {
          return usage("launch", fmt::format("--forward: host port {}/{} is given twice",
                                             f->host_port, f->protocol));
        }
      }
      forwards.push_back(host::forward_json(*f));
    }
    req["forwards"] = forwards;
  }
  if (!o.restart_policy.empty()) req["restart_policy"] = o.restart_policy;
  if (o.no_start) req["start"] = false;
  if (o.timeout_s == 0 || o.timeout_s < -1)
    return usage("launch", "--timeout must be at least 1 second");

  const std::string shown = o.name.empty() ? "a VM" : o.name;
  Progress progress("Launching " + shown);
  auto created = c.client.request("POST", "/v1/vms", req);
  if (!created.ok()) {
    progress.finish();
    return fail("launch", o.name, created.message());
  }
  const std::string name = json_str(*created, "name", o.name);
  if (o.no_start || o.no_wait) {
    progress.finish();
    if (o.json) print_json(*created);
    say(c, o.no_start
               ? fmt::format("Created {} (stopped; start it with: nimbus start {})", name, name)
               : fmt::format("Launched {} ({})", name, json_str(*created, "state", "starting")));
    return 0;
  }
  progress.set_action("Launching " + name);
  progress.set_state(json_str(*created, "state", "starting"));
  auto vm = wait_ready(c, name, o.timeout_s > 0 ? o.timeout_s : kDefaultReadyTimeout, progress);
  progress.finish();
  if (!vm.ok()) return fail("launch", name, vm.message());
  if (o.json) print_json(*vm);
  say(c, fmt::format("Launched {}: {}", name, vm_summary(*vm)));
  return 0;
}

int cmd_list(Ctx& c) {
  auto r = c.client.request("GET", "/v1/vms");
  if (!r.ok()) return fail("list", "", r.message());
  if (c.o.json) {
    print_json(*r);
    return 0;
  }
  const json vms = r->is_object() && r->contains("vms") ? (*r)["vms"] : json::array();
  if (!vms.is_array() || vms.empty()) {
    std::fprintf(stderr, "No VMs. Create one with: nimbus launch\n");
    return 0;
  }
  std::fputs(format_vm_list(vms).c_str(), stdout);
  return 0;
}

int cmd_info(Ctx& c) {
  bool first = true;
  return for_each_vm(c, c.o.names, [&](const std::string& name) -> Result<json> {
    auto r = c.client.request("GET", vm_path(name));
    if (r.ok() && !c.o.json) {
      std::printf("%s%s", first ? "" : "\n", format_vm_info(*r).c_str());
      std::fflush(stdout);
      first = false;
    }
    return r;
  });
}

// console and shell: the VM's console socket.
Result<std::string> console_socket_of(Ctx& c, const std::string& name) {
  auto r = c.client.request("GET", vm_path(name));
  if (!r.ok()) return r.status();
  const std::string state = json_str(*r, "state");
  if (!state.empty() && !is_live(state)) {
    return Status::error(fmt::format("the VM is {}; start it with: nimbus start {}", state, name));
  }
  const std::string socket = json_str(*r, "console_socket");
  if (socket.empty()) return Status::error("nimbusd reports no console socket for it");
  if (c.client.endpoint().tcp && ::access(socket.c_str(), F_OK) != 0) {
    return Status::error(fmt::format(
        "its console socket {} is not on this machine: console and shell work on nimbusd's host",
        socket));
  }
  return socket;
}

int cmd_console(Ctx& c, bool shell) {
  const std::string verb = shell ? "shell" : "console";
  const std::string& name = c.o.names.at(0);
  auto socket = console_socket_of(c, name);
  if (!socket.ok()) return fail(verb, name, socket.message());
  if (!shell || c.o.command.empty()) return attach_console(verb, name, *socket, shell);
  ShellCommandOptions so;
  so.timeout_s = c.o.timeout_s > 0 ? c.o.timeout_s : kDefaultShellTimeout;
  const bool plain = isatty(STDOUT_FILENO) != 1;  // colors only for a terminal
  auto status = run_shell_command(*socket, c.o.command, so, [plain](const std::string& text) {
    const std::string shown = plain ? strip_terminal_escapes(text) : text;
    std::fwrite(shown.data(), 1, shown.size(), stdout);
    std::fflush(stdout);
  });
  if (!status.ok()) return fail(verb, name, status.message());
  return *status;
}

std::vector<std::string> names_or_all(Ctx& c, const std::function<bool(const json&)>& pick,
                                      Status& error) {
  if (!c.o.all) return c.o.names;
  std::vector<std::string> names;
  auto r = c.client.request("GET", "/v1/vms");
  if (!r.ok()) {
    error = r.status();
    return names;
  }
  if (r->is_object() && r->contains("vms") && (*r)["vms"].is_array()) {
    for (const json& vm : (*r)["vms"]) {
      if (pick(vm)) names.push_back(json_str(vm, "name"));
    }
  }
  return names;
}

json stop_body(const HostCommandOptions& o) {
  json body = json::object();
  if (o.force) body["force"] = true;
  if (o.timeout_s > 0) body["timeout_s"] = o.timeout_s;
  return body;
}

int stop_read_timeout(const HostCommandOptions& o) {
  return std::max(120, (o.timeout_s > 0 ? o.timeout_s : kApiStopTimeout) + 60);
}

int cmd_stop(Ctx& c) {
  Status error;
  const auto names = names_or_all(
      c,
      [](const json& vm) {
        return is_live(json_str(vm, "state")) || json_str(vm, "desired_state") == "running";
      },
      error);
  if (!error.ok()) return fail("stop", "", error.message());
  if (names.empty()) {
    std::fprintf(stderr, "No running VMs.\n");
    return 0;
  }
  c.client.set_read_timeout(stop_read_timeout(c.o));
  return for_each_vm(c, names, [&](const std::string& name) -> Result<json> {
    Progress progress("Stopping " + name);
    progress.set_state(c.o.force ? "stopping (forced)" : "shutting down");
    auto r = c.client.request("POST", vm_path(name) + "/stop", stop_body(c.o));
    if (!r.ok()) return r;
    json vm = *r;
    if (json_str(vm, "state") == "stopping") {
      auto w = wait_stopped(c, name, (c.o.timeout_s > 0 ? c.o.timeout_s : kApiStopTimeout) + 60,
                            progress);
      if (!w.ok()) return w;
      if (r->contains("graceful")) (*w)["graceful"] = (*r)["graceful"];
      vm = *w;
    }
    progress.finish();
    std::string how;
    if (vm.contains("graceful") && vm["graceful"].is_boolean() && !vm["graceful"].get<bool>()) {
      how = c.o.force ? " (forced)" : " (hard stop: the guest did not shut down in time)";
    }
    say(c, fmt::format("Stopped {}{}", name, how));
    return vm;
  });
}

int cmd_start_or_restart(Ctx& c, bool restart) {
  const std::string verb = restart ? "restart" : "start";
  if (restart) c.client.set_read_timeout(stop_read_timeout(c.o));
  return for_each_vm(c, c.o.names, [&](const std::string& name) -> Result<json> {
    Progress progress((restart ? "Restarting " : "Starting ") + name);
    progress.set_state(restart ? "stopping" : "starting");
    auto r = restart ? c.client.request("POST", vm_path(name) + "/restart", stop_body(c.o))
                     : c.client.request("POST", vm_path(name) + "/start");
    if (!r.ok()) return r;
    if (c.o.no_wait) {
      progress.finish();
      say(c, fmt::format("{} {} ({})", restart ? "Restarted" : "Started", name,
                         json_str(*r, "state", "starting")));
      return r;
    }
    progress.set_state(json_str(*r, "state", "starting"));
    // A restart's reply may come before the VM went down: wait for the restart itself.
    auto vm = wait_ready(
        c, name,
        restart ? kDefaultReadyTimeout : (c.o.timeout_s > 0 ? c.o.timeout_s : kDefaultReadyTimeout),
        progress);
    progress.finish();
    if (!vm.ok()) return vm;
    say(c, fmt::format("{} {}: {}", restart ? "Restarted" : "Started", name, vm_summary(*vm)));
    return vm;
  });
}

int cmd_simple(Ctx& c, const std::string& action, const std::string& done) {
  return for_each_vm(c, c.o.names, [&](const std::string& name) -> Result<json> {
    auto r = c.client.request("POST", vm_path(name) + "/" + action);
    if (r.ok()) say(c, fmt::format("{} {}", done, name));
    return r;
  });
}

int cmd_resize(Ctx& c) {
  const HostCommandOptions& o = c.o;
  json body = json::object();
  if (o.cpus != -1) {
    if (o.cpus < 1 || o.cpus > static_cast<int>(config::kMaxVcpus)) {
      return usage("resize",
                   fmt::format("--cpus {} is out of range (1 to {})", o.cpus, config::kMaxVcpus));
    }
    body["cpus"] = o.cpus;
  }
  if (!o.memory.empty()) {
    auto mib = parse_mib(o.memory);
    if (!mib.ok()) return usage("resize", "--memory: " + mib.message());
    body["memory_mib"] = *mib;
  }
  if (!o.disk.empty()) {
    auto mib = parse_mib(o.disk);
    if (!mib.ok()) return usage("resize", "--disk: " + mib.message());
    body["disk_mib"] = *mib;
  }
  if (body.empty()) return usage("resize", "give at least one of --cpus, --memory, --disk");
  const std::string& name = o.names.at(0);
  auto r = c.client.request("POST", vm_path(name) + "/resize", body);
  if (!r.ok()) return fail("resize", name, r.message());
  if (o.json) print_json(*r);
  say(c, fmt::format("Resized {}: {}", name, vm_summary(*r)));
  return 0;
}

int cmd_snapshot(Ctx& c) {
  const std::string& name = c.o.names.at(0);
  json body = json::object();
  if (!c.o.snapshot.empty()) {
    if (Status s = check_name(c.o.snapshot, "snapshot name"); !s.ok())
      return usage("snapshot", "--name: " + s.message());
    body["name"] = c.o.snapshot;
  }
  c.client.set_read_timeout(600);
  Progress progress("Snapshotting " + name);
  progress.set_state("saving");
  auto r = c.client.request("POST", vm_path(name) + "/snapshots", body);
  progress.finish();
  if (!r.ok()) return fail("snapshot", name, r.message());
  if (c.o.json) print_json(*r);
  double size;
  say(c, fmt::format("Took snapshot {} of {}{}", json_str(*r, "name", "?"), name,
                     json_num(*r, "size_bytes", size) ? " (" + format_bytes(size) + ")" : ""));
  return 0;
}

int cmd_snapshots(Ctx& c) {
  const std::string& name = c.o.names.at(0);
  if (!c.o.delete_snapshots.empty()) {
    for (const std::string& snap : c.o.delete_snapshots) {
      if (Status s = check_name(snap, "snapshot name"); !s.ok())
        return usage("snapshots", "--delete: " + s.message());
    }
    int status = 0;
    json results = json::array();
    for (const std::string& snap : c.o.delete_snapshots) {
      auto r = c.client.request("DELETE", vm_path(name) + "/snapshots/" + snap);
      if (!r.ok()) {
        status = fail("snapshots", name, fmt::format("delete {}: {}", snap, r.message()));
        continue;
      }
      results.push_back(*r);
      say(c, fmt::format("Deleted snapshot {} of {}", snap, name));
    }
    if (c.o.json && !results.empty()) print_json(results.size() == 1 ? results[0] : results);
    return status;
  }
  auto r = c.client.request("GET", vm_path(name) + "/snapshots");
  if (!r.ok()) return fail("snapshots", name, r.message());
  if (c.o.json) {
    print_json(*r);
    return 0;
  }
  const json snaps = r->is_object() && r->contains("snapshots") ? (*r)["snapshots"] : json::array();
  if (!snaps.is_array() || snaps.empty()) {
    std::fprintf(stderr, "No snapshots of %s. Take one with: nimbus snapshot %s\n", name.c_str(),
                 name.c_str());
    return 0;
  }
  std::fputs(format_snapshots(snaps).c_str(), stdout);
  return 0;
}

int cmd_restore(Ctx& c) {
  const std::string& name = c.o.names.at(0);
  if (Status s = check_name(c.o.snapshot, "snapshot name"); !s.ok())
    return usage("restore", s.message());
  c.client.set_read_timeout(600);
  Progress progress("Restoring " + name);
  progress.set_state("loading " + c.o.snapshot);
  auto r = c.client.request("POST", vm_path(name) + "/restore", json{{"snapshot", c.o.snapshot}});
  progress.finish();
  if (!r.ok()) return fail("restore", name, r.message());
  if (c.o.json) print_json(*r);
  say(c, fmt::format("Restored {} from snapshot {} (now {})", name, c.o.snapshot,
                     json_str(*r, "state", "?")));
  return 0;
}

// The first line of a token file, without its line end.
Result<std::string> read_token_line(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error(fmt::format("cannot read the token file '{}'", path));
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) return Status::error(fmt::format("the token file '{}' is empty", path));
  return line;
}

int cmd_migrate(Ctx& c) {
  const std::string& name = c.o.names.at(0);
  if (c.o.target.rfind("http://", 0) != 0)
    return usage("migrate", "--to must be the target nimbusd's TCP API, http://HOST:PORT");
  json body = {{"target", c.o.target}};
  if (!c.o.target_token_file.empty()) {
    auto token = read_token_line(c.o.target_token_file);
    if (!token.ok()) return usage("migrate", token.message());
    body["target_token"] = *token;
  }
  if (c.o.max_downtime_ms != -1) body["max_downtime_ms"] = c.o.max_downtime_ms;
  const int timeout = c.o.timeout_s > 0 ? c.o.timeout_s : 300;
  body["timeout_s"] = timeout;
  c.client.set_read_timeout(timeout + 60);
  Progress progress("Migrating " + name);
  progress.set_state("to " + c.o.target);
  auto r = c.client.request("POST", vm_path(name) + "/migrate", body);
  progress.finish();
  if (!r.ok()) return fail("migrate", name, r.message());
  if (c.o.json) print_json(*r);
  say(c, fmt::format("Migrated {} to {} in {:.0f} ms (downtime {:.1f} ms, {} MiB of RAM, {} KiB "
                     "of disk){}",
                     name, c.o.target, r->value("total_ms", 0.0), r->value("downtime_ms", 0.0),
                     r->value("ram_bytes_sent", uint64_t{0}) >> 20,
                     r->value("disk_bytes_sent", uint64_t{0}) >> 10,
                     r->contains("warning") ? "; " + json_str(*r, "warning", "") : ""));
  return 0;
}

int cmd_delete(Ctx& c) {
  Status error;
  const auto names = names_or_all(
      c, [](const json&) { return true; }, error);
  if (!error.ok()) return fail("delete", "", error.message());
  if (names.empty()) {
    std::fprintf(stderr, "No VMs.\n");
    return 0;
  }
  c.client.set_read_timeout(stop_read_timeout(c.o));
  return for_each_vm(c, names, [&](const std::string& name) -> Result<json> {
    if (!c.o.force) {
      auto vm = c.client.request("GET", vm_path(name));
      if (!vm.ok()) return vm;
      const std::string state = json_str(*vm, "state");
      if (is_live(state)) {
        return Status::error(fmt::format(
            "the VM is {}; stop it first (nimbus stop {}) or delete it with --force", state, name));
      }
    }
    auto r = c.client.request("DELETE", vm_path(name));
    if (r.ok()) say(c, fmt::format("Deleted {}", name));
    return r;
  });
}

int cmd_images(Ctx& c) {
  auto r = c.client.request("GET", "/v1/images");
  if (!r.ok()) return fail("images", "", r.message());
  if (c.o.json) {
    print_json(*r);
    return 0;
  }
  const json images = r->is_object() && r->contains("images") ? (*r)["images"] : json::array();
  if (!images.is_array() || images.empty()) {
    std::fprintf(stderr, "No images.\n");
    return 0;
  }
  std::fputs(format_images(images).c_str(), stdout);
  return 0;
}

int cmd_host(Ctx& c) {
  auto r = c.client.request("GET", "/v1/host");
  if (!r.ok()) return fail("host", "", r.message());
  if (c.o.json) {
    print_json(*r);
    return 0;
  }
  std::fputs(format_host(*r).c_str(), stdout);
  return 0;
}

// ------------------------------------------------------------------------------------------

CLI::App* verb(CLI::App& app, HostCommandOptions& o, const std::string& name,
               const std::string& help) {
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->group("VM management (talks to nimbusd)");
  cmd->preparse_callback([&o, name](size_t) { o.verb = name; });
  cmd->add_option("--host", o.host,
                  "nimbusd's socket, or http://HOST:PORT (default: $NIMBUS_HOST, else "
                  "/run/nimbus/nimbusd.sock)");
  cmd->add_option("--token-file", o.token_file,
                  "With an http:// host: the bearer token's file (default: $NIMBUS_TOKEN)");
  return cmd;
}

void json_flag(CLI::App* cmd, HostCommandOptions& o) {
  cmd->add_flag("--json", o.json, "Print the API's JSON reply");
}

void names_arg(CLI::App* cmd, HostCommandOptions& o, bool required = true) {
  CLI::Option* opt = cmd->add_option("NAME", o.names, "VM name(s)");
  if (required) opt->required();
}

void name_arg(CLI::App* cmd, HostCommandOptions& o) {
  cmd->add_option("NAME", o.single_name, "VM name")->required();
}

}  // namespace

void add_host_commands(CLI::App& app, HostCommandOptions& o) {
  CLI::App* cmd = verb(app, o, "launch", "Create a VM from an image and start it");
  cmd->add_option("-n,--name", o.name,
                  "The VM's name: a-z, 0-9 and '-', starting with a letter (default: vm-N)");
  cmd->add_option("-c,--cpus", o.cpus, "vCPUs (default 1)");
  cmd->add_option("-m,--memory", o.memory, "Memory: 256M, 1G, or MiB (default 256M)");
  cmd->add_option("-d,--disk", o.disk, "Disk size: 2G, or MiB (default: the image's)");
  cmd->add_option("-i,--image", o.image, "The image (default: default; see `nimbus images`)");
  cmd->add_option(
      "-p,--forward", o.forwards,
      "Forward a host port to the guest: [ADDR:]HOST_PORT:GUEST_PORT[/udp] (repeatable)");
  cmd->add_option("--restart", o.restart_policy, "Restart policy (default no)")
      ->check(CLI::IsMember({"no", "on-failure", "always"}));
  cmd->add_flag("--no-start", o.no_start, "Create the VM stopped");
  cmd->add_flag("--no-wait", o.no_wait,
                "Return once the VM is starting, without waiting for its guest");
  cmd->add_option("--timeout", o.timeout_s,
                  "Seconds to wait for the guest to be ready (default 300)");
  json_flag(cmd, o);

  cmd = verb(app, o, "list", "List the VMs");
  cmd->alias("ls");
  json_flag(cmd, o);

  cmd = verb(app, o, "info", "Show VMs in detail, with their resource usage");
  names_arg(cmd, o);
  json_flag(cmd, o);

  cmd = verb(app, o, "console", "Attach to a VM's serial console (detach with Ctrl-])");
  name_arg(cmd, o);

  cmd = verb(app, o, "shell",
             "A shell on a VM's console; with -c, run one command and exit with its status");
  name_arg(cmd, o);
  cmd->add_option("-c,--command", o.command,
                  "Run this shell command, print its output and exit with its status");
  cmd->add_option("--timeout", o.timeout_s,
                  "With -c: seconds to wait for the command (default 60)");

  cmd = verb(app, o, "stop", "Shut VMs down (gracefully, then hard after --timeout)");
  names_arg(cmd, o, false);
  cmd->add_flag("--all", o.all, "Stop every running VM");
  cmd->add_flag("-f,--force", o.force, "Stop at once, without asking the guest to shut down");
  cmd->add_option("--timeout", o.timeout_s,
                  "Seconds for the guest to shut down before a hard stop (default 30)");
  json_flag(cmd, o);

  cmd = verb(app, o, "start", "Start stopped VMs and wait for their guests");
  names_arg(cmd, o);
  cmd->add_flag("--no-wait", o.no_wait, "Return once the VM is starting");
  cmd->add_option("--timeout", o.timeout_s,
                  "Seconds to wait for the guest to be ready (default 300)");
  json_flag(cmd, o);

  cmd = verb(app, o, "restart", "Stop and start VMs");
  names_arg(cmd, o);
  cmd->add_flag("-f,--force", o.force, "Stop at once, without asking the guest to shut down");
  cmd->add_option("--timeout", o.timeout_s,
                  "Seconds for the guest to shut down before a hard stop (default 30)");
  cmd->add_flag("--no-wait", o.no_wait, "Return without waiting for the guest to be ready again");
  json_flag(cmd, o);

  cmd = verb(app, o, "pause", "Pause VMs (their vCPUs stop; memory stays allocated)");
  names_arg(cmd, o);
  json_flag(cmd, o);

  cmd = verb(app, o, "resume", "Resume paused VMs");
  names_arg(cmd, o);
  json_flag(cmd, o);

  cmd =
      verb(app, o, "resize", "Change a stopped VM's vCPUs, memory or disk size (disks only grow)");
  name_arg(cmd, o);
  cmd->add_option("-c,--cpus", o.cpus, "vCPUs");
  cmd->add_option("-m,--memory", o.memory, "Memory: 512M, 1G, or MiB");
  cmd->add_option("-d,--disk", o.disk, "Disk size: 4G, or MiB");
  json_flag(cmd, o);

  cmd = verb(app, o, "snapshot", "Take a snapshot of a VM (its memory, devices and disk)");
  name_arg(cmd, o);
  cmd->add_option("-n,--name", o.snapshot, "The snapshot's name (default: snap-N)");
  json_flag(cmd, o);

  cmd = verb(app, o, "snapshots", "List a VM's snapshots, or delete some with --delete");
  name_arg(cmd, o);
  cmd->add_option("--delete", o.delete_snapshots, "Delete this snapshot (repeatable)");
  json_flag(cmd, o);

  cmd = verb(app, o, "restore", "Put a VM back to a snapshot");
  name_arg(cmd, o);
  cmd->add_option("SNAPSHOT", o.snapshot, "The snapshot")->required();
  json_flag(cmd, o);

  cmd = verb(app, o, "delete", "Delete VMs, their disks and snapshots");
  cmd->alias("rm");
  names_arg(cmd, o, false);
  cmd->add_flag("--all", o.all, "Delete every VM");
  cmd->add_flag("-f,--force", o.force, "Also delete running VMs (they are stopped hard)");
  json_flag(cmd, o);

  cmd = verb(app, o, "migrate",
             "Move a running VM to another nimbusd while it runs (live migration)");
  name_arg(cmd, o);
  cmd->add_option("--to", o.target, "The target nimbusd's TCP API: http://HOST:PORT")->required();
  cmd->add_option("--to-token-file", o.target_token_file, "The target API's bearer token's file");
  cmd->add_option("--max-downtime", o.max_downtime_ms,
                  "Milliseconds the guest may stand still at the end (default 100)");
  cmd->add_option("--timeout", o.timeout_s,
                  "Seconds before the migration is given up (default 300)");
  json_flag(cmd, o);

  cmd = verb(app, o, "images", "List the images VMs can be launched from");
  json_flag(cmd, o);

  cmd = verb(app, o, "host", "Show the host's capacity and what the VMs have allocated");
  json_flag(cmd, o);
}

int host_command(const HostCommandOptions& options) {
  HostCommandOptions o = options;
  if (!o.single_name.empty()) o.names = {o.single_name};
  const std::string& v = o.verb;
  // Arguments first: names, and the choice between NAME... and --all.
  if (v == "stop" || v == "delete") {
    if (o.all && !o.names.empty()) return usage(v, "give VM names or --all, not both");
    if (!o.all && o.names.empty()) return usage(v, "give the VM names, or --all");
  }
  for (const std::string& name : o.names) {
    // Names the API could not have made are not worth a request (and keep paths sane).
    if (Status s = check_name(name); !s.ok()) return usage(v, s.message());
  }
  if (!o.command.empty() && o.command.find_first_not_of(" \t") == std::string::npos)
    return usage(v, "-c: the command is empty");
  if (o.timeout_s == 0 || o.timeout_s < -1) return usage(v, "--timeout must be at least 1 second");

  auto endpoint = resolve_endpoint(o.host, o.token_file);
  if (!endpoint.ok()) return usage(v, endpoint.message());
  Ctx c{o, HostClient(*endpoint)};
  if (v == "launch") return cmd_launch(c);
  if (v == "list") return cmd_list(c);
  if (v == "info") return cmd_info(c);
  if (v == "console") return cmd_console(c, false);
  if (v == "shell") return cmd_console(c, true);
  if (v == "stop") return cmd_stop(c);
  if (v == "start") return cmd_start_or_restart(c, false);
  if (v == "restart") return cmd_start_or_restart(c, true);
  if (v == "pause") return cmd_simple(c, "pause", "Paused");
  if (v == "resume") return cmd_simple(c, "resume", "Resumed");
  if (v == "resize") return cmd_resize(c);
  if (v == "snapshot") return cmd_snapshot(c);
  if (v == "snapshots") return cmd_snapshots(c);
  if (v == "restore") return cmd_restore(c);
  if (v == "delete") return cmd_delete(c);
  if (v == "migrate") return cmd_migrate(c);
  if (v == "images") return cmd_images(c);
  if (v == "host") return cmd_host(c);
  return usage(v, "unknown command");
}

}  // namespace nimbus::cli
