// nimbusd's GET /metrics: the Prometheus text exposition of the host's capacity and of
// every VM's state and usage, built from the typed values the operations return.
#pragma once

#include <string>
#include <vector>

#include "host/host_types.h"

namespace nimbus::host {

std::string prometheus_text(const HostInfo& host, const std::vector<VmInfo>& vms);

}  // namespace nimbus::host
