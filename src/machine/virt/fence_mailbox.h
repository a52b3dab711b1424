// Remote SFENCE.VMA requests on their way to one hart (the SBI RFENCE extension).
//
// Other harts post a request and wait until the target has performed it: the SBI call is
// synchronous. The target's thread takes the request between slices. Two requests that meet
// in the mailbox become one flush of everything (more than either asked, which is allowed).
// Tickets tell a sender when its own request is done even if it was merged with another.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "machine/virt/sbi.h"

namespace nimbus::machine::virt {

class FenceMailbox {
 public:
  // Posts `what`; returns the ticket that done() must reach before the sender goes on.
  uint64_t post(const SfenceRequest& what);
  // True while a request waits (cheap: the hart's loop checks it between slices).
  bool pending() const { return pending_.load(std::memory_order_acquire); }
  // Takes the waiting request. False if there is none; else perform `what`, then call
  // finish(ticket).
  bool take(SfenceRequest& what, uint64_t& ticket);
  void finish(uint64_t ticket) { done_.store(ticket, std::memory_order_release); }
  // True once the request that got `ticket` (and every earlier one) has been performed.
  bool done(uint64_t ticket) const { return done_.load(std::memory_order_acquire) >= ticket; }

 private:
  std::mutex mu_;
  SfenceRequest what_;   // guarded by mu_
  bool full_ = false;    // guarded by mu_: a request is waiting
  uint64_t posted_ = 0;  // guarded by mu_: tickets handed out
  std::atomic<bool> pending_{false};
  std::atomic<uint64_t> done_{0};
};

}  // namespace nimbus::machine::virt
