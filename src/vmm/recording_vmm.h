// A stand-in for the VMM behind the VM API, for the router's unit tests and its fuzz
// target: applies configuration edits to a plain VmConfig and records the other calls.
#pragma once

#include <string>

#include "vmm/api.h"

namespace nimbus::vmm {

class RecordingVmm : public VmmControl {
 public:
  json info() override { return {{"state", running ? "Running" : "NotStarted"}}; }
  VmConfig config() override { return config_; }
  ApiResponse edit_config(const std::function<ApiResponse(VmConfig&)>& edit) override {
    if (running) return ApiResponse::error(409, "running");
    VmConfig c = config_;
    ApiResponse r = edit(c);
    if (r.status < 300) config_ = c;
    return r;
  }
  ApiResponse resize_drive(const std::string& id, uint64_t size) override {
    last = "resize " + id + " " + std::to_string(size);
    return ApiResponse::no_content();
  }
  ApiResponse action(const Action& a) override {
    last = "action " + std::to_string(static_cast<int>(a.type)) + " " + std::to_string(a.timeout_s);
    return ApiResponse::no_content();
  }
  ApiResponse set_paused(bool p) override {
    last = p ? "pause" : "resume";
    return ApiResponse::no_content();
  }
  ApiResponse snapshot_create(const std::string& path) override {
    last = "create " + path;
    return ApiResponse::no_content();
  }
  ApiResponse snapshot_load(const std::string& path, bool resume) override {
    last = "load " + path + (resume ? " resume" : "");
    return ApiResponse::no_content();
  }
  bool running = false;
  std::string last;
  VmConfig config_;
};

}  // namespace nimbus::vmm
