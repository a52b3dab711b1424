// `nimbus image`: create, inspect, convert and resize disk images (raw and qcow2).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace nimbus::cli {

struct ImageOptions {
  std::string action;         // "create", "info", "convert" or "resize", set by the parser
  std::string file;           // create, info, resize
  std::string size;           // create (optional with a backing file), resize ("+1G" grows by)
  std::string format;         // create: output format; convert: source format ("" = probe)
  std::string output_format;  // convert -O
  std::string backing, backing_format;
  std::string cluster_size = "64K";
  std::string source, destination;
  bool json = false;
};

void add_image_command(CLI::App& app, ImageOptions& options);

// Runs the chosen action; returns the exit status (0, or 2 with a one-line message).
int image_command(const ImageOptions& options);

}  // namespace nimbus::cli
