// The `nimbus` command.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <string>

#include "cli/cloud_command.h"
#include "cli/host_commands.h"
#include "cli/image_command.h"
#include "cli/run_command.h"
#include "cli/vmm_command.h"

int main(int argc, char** argv) {
  // A closed stdout or a peer that went away is an error to handle where it happens
  // (EPIPE), not a reason to die.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"Nimbus: a RISC-V (RV64GC) hypervisor and personal cloud"};
  app.set_version_flag("--version", std::string("nimbus 0.1.0"));
  app.require_subcommand(1);
  nimbus::cli::RunOptions run;
  nimbus::cli::add_run_command(app, run);
  nimbus::cli::ImageOptions image;
  nimbus::cli::add_image_command(app, image);
  nimbus::cli::VmmCommandOptions vmm;
  nimbus::cli::add_vmm_command(app, vmm);
  nimbus::cli::HostCommandOptions host;  // launch, list, stop, ...: clients of nimbusd
  nimbus::cli::add_host_commands(app, host);
  nimbus::cli::CloudCommandOptions cloud;  // up, down, hosts, zones, instances
  nimbus::cli::add_cloud_command(app, cloud);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors: one clear line and exit status 2.
    std::fprintf(stderr, "nimbus: %s\nRun 'nimbus --help' for usage.\n", e.what());
    return 2;
  }
  if (app.got_subcommand("run")) return nimbus::cli::run_command(run);
  if (app.got_subcommand("image")) return nimbus::cli::image_command(image);
  if (app.got_subcommand("vmm")) return nimbus::cli::vmm_command(vmm);
  if (app.got_subcommand("cloud")) return nimbus::cli::cloud_command(cloud);
  if (!host.verb.empty()) return nimbus::cli::host_command(host);
  return 2;
}
