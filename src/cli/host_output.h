// Human output of the host verbs: aligned tables and key: value blocks made from the API's
// JSON objects (docs/nimbusd.md). Missing or mistyped fields show as "--", never throw.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nimbus::cli {

// Columns separated by two spaces, each as wide as its widest cell (in UTF-8 characters);
// no trailing spaces.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add_row(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t rows() const { return rows_.size() - 1; }
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "256MiB", "1GiB", "1.5GiB", "40.2MiB".
std::string format_mib(double mib);
// "0B", "512B", "1.5KiB", "3.1MiB".
std::string format_bytes(double bytes);
// "8080->80", "127.0.0.1:8080->53/udp" (address shown unless 0.0.0.0, protocol unless tcp).
std::string format_forward(const nlohmann::json& forward);
// All of a VM's forwards, comma-separated; "--" when none.
std::string format_forwards(const nlohmann::json& vm);
// The address a VM is reached at from the host (addresses.host, else addresses.user).
std::string format_ipv4(const nlohmann::json& vm);

// `list`: Name State CPUs Memory Disk IPv4 Forwards.
std::string format_vm_list(const nlohmann::json& vms);
// `info`: one VM as "Key:  value" lines.
std::string format_vm_info(const nlohmann::json& vm);
// `host`: a summary and the resource table.
std::string format_host(const nlohmann::json& host);
// `images`: Name Disk Format Created Description.
std::string format_images(const nlohmann::json& images);
// `snapshots`: Name Created Size.
std::string format_snapshots(const nlohmann::json& snapshots);

// Field access that never throws: "" / the fallback when absent or of another type.
std::string json_str(const nlohmann::json& j, const char* key, const std::string& fallback = "");
bool json_num(const nlohmann::json& j, const char* key, double& out);

}  // namespace nimbus::cli
