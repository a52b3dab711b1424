// A hart's architectural state in a snapshot: registers, CSRs, PMP, the LR/SC reservation
// and whether it sits in WFI. Caches (TLBs, decoded blocks) are not state: load drops them.
#pragma once

#include "common/state_io.h"
#include "cpu/hart.h"

namespace nimbus::cpu {

void save_hart_state(const Hart& hart, StateWriter& w);
// Validates as it reads (privilege, rounding mode, ...); on error the stream fails and
// the hart is left in an unspecified but safe state.
void load_hart_state(Hart& hart, StateReader& r);

}  // namespace nimbus::cpu
