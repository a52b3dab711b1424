// nimbusd's side of one VM's API socket (docs/vmm.md): short synchronous calls.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/devices.h"
#include "config/metadata_config.h"

namespace nimbus::host {

class VmmLink {
 public:
  explicit VmmLink(std::string api_sock) : sock_(std::move(api_sock)) {}

  // GET / (state, agent readiness, device counters). Short timeout: a healthy VMM
  // answers at once.
  Result<nlohmann::json> info(int timeout_ms = 2000) const;
  Status pause() const;
  Status resume() const;
  // Graceful shutdown through the guest agent, hard after `timeout_s`; true if graceful.
  Result<bool> shutdown(unsigned timeout_s) const;
  Status stop() const;
  Status snapshot_create(const std::string& path) const;
  // PUT /network-interfaces/IFACE/forwards: the VMM applies them at once or changes nothing.
  Status set_forwards(const std::string& iface,
                      const std::vector<config::PortForward>& forwards) const;
  // PUT /mmds (the data tree) then PUT /mmds/config (its options): the VMM serves them from
  // its next metadata request on.
  Status set_metadata(const config::MetadataConfig& metadata) const;
  // The migration API: GET, PUT (start, as the source) or DELETE (cancel) /migration.
  Result<nlohmann::json> migration(const std::string& method, const nlohmann::json& body) const;

 private:
  // The reply body of a 2xx, or the VMM's fault_message.
  Result<nlohmann::json> call(const char* method, const std::string& path,
                              const nlohmann::json& body, int timeout_ms) const;
  std::string sock_;
};

}  // namespace nimbus::host
