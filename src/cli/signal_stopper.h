// Moved to common/signal_stopper.h (nimbusd uses it too). This forwarder lasts until
// the VMM's entry point (issue 15 item 4) is committed with the new include; then it goes.
#pragma once

#include "common/signal_stopper.h"

namespace nimbus::cli {
using nimbus::SignalStopper;
}  // namespace nimbus::cli
