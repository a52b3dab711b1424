// `nimbus run`: boots a machine in the foreground.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace nimbus::cli {

struct RunOptions {
  std::string bare;  // bare-metal ELF
  // The Linux machine (when --bare is not given).
  std::string kernel, initrd, append, firmware;
  bool append_given = false;
  unsigned cpus = 1;
  bool no_reboot = false;
  std::vector<std::string> disks, nets;
  bool no_rng = false;
  std::string metadata;  // --metadata FILE
  std::string virtio_console;
  std::string memory = "256M";
  uint64_t max_insns = 0;
  bool trace = false;
  std::string trace_file;
  std::string signature;
  unsigned signature_granularity = 4;
  bool stats = false;
  bool check_reference = false;  // the fast path checked against the reference path
  bool check_jit = false;        // the JIT checked against the reference path
  std::string engine = "jit";    // --engine: jit or interp
};

void add_run_command(CLI::App& app, RunOptions& options);

// Runs the machine; returns the process exit status.
int run_command(const RunOptions& options);

}  // namespace nimbus::cli
