#include "machine/virt/fence_mailbox.h"

namespace nimbus::machine::virt {

uint64_t FenceMailbox::post(const SfenceRequest& what) {
  std::lock_guard<std::mutex> lock(mu_);
  what_ = full_ ? SfenceRequest{} : what;  // two requests: drop everything
  full_ = true;
  pending_.store(true, std::memory_order_release);
  return ++posted_;
}

bool FenceMailbox::take(SfenceRequest& what, uint64_t& ticket) {
  if (!pending()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!full_) return false;
  what = what_;
  ticket = posted_;
  full_ = false;
  pending_.store(false, std::memory_order_relaxed);
  return true;
}

}  // namespace nimbus::machine::virt
