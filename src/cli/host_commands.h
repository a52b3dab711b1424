// The `nimbus` verbs that are clients of nimbusd's API (docs/nimbusd.md): launch, list,
// info, console, shell, stop, start, restart, pause, resume, resize, snapshot, snapshots,
// restore, delete, images, host.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace nimbus::cli {

struct HostCommandOptions {
  std::string verb;  // the subcommand given ("" = none of these), set by the parser
  // Every verb.
  std::string host;        // --host: socket path or http://HOST:PORT
  std::string token_file;  // --token-file
  bool json = false;       // --json
  // The VMs (or a VM) the verb acts on.
  std::vector<std::string> names;
  std::string single_name;  // verbs that take one VM (moved into names)
  bool all = false, force = false;
  // launch (cpus, memory and disk also resize); "" / -1 = not given.
  std::string name, image, memory, disk, restart_policy;
  int cpus = -1;
  std::vector<std::string> forwards;
  bool no_start = false, no_wait = false;
  int timeout_s = -1;  // the verb's default when not given
  // shell -c
  std::string command;
  // snapshot / restore / snapshots --delete
  std::string snapshot;
  std::vector<std::string> delete_snapshots;
  // migrate: the target nimbusd's TCP API and its token's file; -1 = nimbusd's default.
  std::string target, target_token_file;
  int max_downtime_ms = -1;
};

void add_host_commands(CLI::App& app, HostCommandOptions& options);

// Runs the verb; returns the exit status: 0 done, 1 the operation failed (a message on
// stderr), 2 bad arguments.
int host_command(const HostCommandOptions& options);

}  // namespace nimbus::cli
