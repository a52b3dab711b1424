#include "devices/plic/plic.h"

#include <algorithm>
#include <string>

namespace nimbus::devices {

namespace {
constexpr uint32_t kValidMask[] = {0xfffffffeu, 0xffffffffu, 0xffffffffu};  // id 0 absent
static_assert(sizeof(kValidMask) / sizeof(kValidMask[0]) == (Plic::kNumSources + 31) / 32);
static_assert(Plic::kNumSources % 32 == 0);
static_assert(Plic::kContextBase + Plic::kMaxContexts * Plic::kContextStride <= Plic::kSize);
}  // namespace

Plic::Plic(unsigned num_harts, std::function<void(unsigned, bool)> set_context_irq)
    : num_contexts_(std::min(num_harts, kMaxContexts / 2) * 2),
      set_context_irq_(std::move(set_context_irq)),
      contexts_(num_contexts_) {}

bool Plic::read(uint64_t offset, unsigned size, uint64_t& value) {
  value = 0;
  if ((size != 4 && size != 8) || offset >= kSize || size > kSize - offset ||
      (offset & (size - 1)) != 0) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  value = read32(offset);
  if (size == 8) value |= static_cast<uint64_t>(read32(offset + 4)) << 32;
  return true;
}

bool Plic::write(uint64_t offset, unsigned size, uint64_t value) {
  if ((size != 4 && size != 8) || offset >= kSize || size > kSize - offset ||
      (offset & (size - 1)) != 0) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  write32(offset, static_cast<uint32_t>(value));
  if (size == 8) write32(offset + 4, static_cast<uint32_t>(value >> 32));
  update_outputs();
  return true;
}

uint32_t Plic::read32(uint64_t offset) {
  if (offset < kPendingBase) {
    const uint64_t id = offset / 4;
    return id < kNumSources ? priority_[id] : 0;
  }
  if (offset < kEnableBase) {
    const uint64_t word = (offset - kPendingBase) / 4;
    return word < kWords ? pending_[word] : 0;
  }
  if (offset < kContextBase) {
    const uint64_t c = (offset - kEnableBase) / kEnableStride;
    const uint64_t word = (offset - kEnableBase) % kEnableStride / 4;
    return c < num_contexts_ && word < kWords ? contexts_[c].enable[word] : 0;
  }
  const uint64_t c = (offset - kContextBase) / kContextStride;
  if (c >= num_contexts_) return 0;
  switch ((offset - kContextBase) % kContextStride) {
    case 0:
      return contexts_[c].threshold;
    case 4: {
      const unsigned id = claim(contexts_[c]);
      update_outputs();
      return id;
    }
    default:
      return 0;
  }
}

void Plic::write32(uint64_t offset, uint32_t value) {
  if (offset < kPendingBase) {
    const uint64_t id = offset / 4;
    if (id != 0 && id < kNumSources) priority_[id] = value & kPriorityMask;
    return;
  }
  if (offset < kEnableBase) return;  // pending bits are read-only
  if (offset < kContextBase) {
    const uint64_t c = (offset - kEnableBase) / kEnableStride;
    const uint64_t word = (offset - kEnableBase) % kEnableStride / 4;
    if (c < num_contexts_ && word < kWords) contexts_[c].enable[word] = value & kValidMask[word];
    return;
  }
  const uint64_t c = (offset - kContextBase) / kContextStride;
  if (c >= num_contexts_) return;
  switch ((offset - kContextBase) % kContextStride) {
    case 0:
      contexts_[c].threshold = value & kPriorityMask;
      break;
    case 4:
      complete(contexts_[c], value);
      break;
    default:
      break;
  }
}

// Highest-priority pending, enabled source above the threshold; ties go to the lowest id.
unsigned Plic::claim(Context& ctx) {
  unsigned best = 0;
  uint32_t best_priority = ctx.threshold;
  for (unsigned w = 0; w < kWords; ++w) {
    uint32_t bits = pending_[w] & ctx.enable[w];
    while (bits != 0) {
      const unsigned id = w * 32 + static_cast<unsigned>(__builtin_ctz(bits));
      bits &= bits - 1;
      if (priority_[id] > best_priority) {
        best = id;
        best_priority = priority_[id];
      }
    }
  }
  if (best != 0) {
    assign(pending_, best, false);
    assign(in_service_, best, true);
  }
  return best;
}

void Plic::complete(Context& ctx, uint32_t id) {
  // riscv-plic-spec: a completion for an id not enabled for this target is ignored.
  if (id == 0 || id >= kNumSources || !test(ctx.enable, id)) return;
  if (!test(in_service_, id)) return;
  assign(in_service_, id, false);
  if (test(line_, id)) assign(pending_, id, true);  // level still high: request again
}

void Plic::set_source_level(unsigned source, bool level) {
  if (source == 0 || source >= kNumSources) return;
  std::lock_guard<std::mutex> lock(mu_);
  assign(line_, source, level);
  assign(pending_, source, level && !test(in_service_, source));
  update_outputs();
}

void Plic::update_outputs() {
  for (unsigned c = 0; c < num_contexts_; ++c) {
    Context& ctx = contexts_[c];
    bool level = false;
    for (unsigned w = 0; w < kWords && !level; ++w) {
      uint32_t bits = pending_[w] & ctx.enable[w];
      while (bits != 0) {
        const unsigned id = w * 32 + static_cast<unsigned>(__builtin_ctz(bits));
        bits &= bits - 1;
        if (priority_[id] > ctx.threshold) {
          level = true;
          break;
        }
      }
    }
    if (level != ctx.output) {
      ctx.output = level;
      set_context_irq_(c, level);
    }
  }
}

void Plic::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin("plic");
  w.u32(num_contexts_);
  for (uint32_t p : priority_) w.u32(p);
  for (const Bits* bits : {&line_, &pending_, &in_service_}) {
    for (uint32_t word : *bits) w.u32(word);
  }
  for (const Context& ctx : contexts_) {
    for (uint32_t word : ctx.enable) w.u32(word);
    w.u32(ctx.threshold);
  }
  w.end();
}

void Plic::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.begin("plic");
  const uint32_t contexts = r.u32();
  if (r.ok() && contexts != num_contexts_) {
    r.fail("snapshot has " + std::to_string(contexts) + " contexts, the machine " +
           std::to_string(num_contexts_));
  }
  std::array<uint32_t, kNumSources> priority{};
  for (unsigned id = 0; id < kNumSources && r.ok(); ++id) {
    priority[id] = r.u32();
    if (priority[id] > kPriorityMask || (id == 0 && priority[id] != 0)) {
      r.fail("priority of source " + std::to_string(id) + " out of range");
    }
  }
  Bits line{}, pending{}, in_service{};
  for (Bits* bits : {&line, &pending, &in_service}) {
    for (unsigned w = 0; w < kWords && r.ok(); ++w) {
      (*bits)[w] = r.u32();
      if ((*bits)[w] & ~kValidMask[w]) r.fail("interrupt bits for sources that do not exist");
    }
  }
  for (unsigned w = 0; w < kWords && r.ok(); ++w) {
    // A request is pending only while its line is high and its gateway open.
    if ((pending[w] & ~line[w]) || (pending[w] & in_service[w])) {
      r.fail("pending bits inconsistent with line and in-service bits");
    }
  }
  std::vector<Context> ctxs(num_contexts_);
  for (unsigned c = 0; c < num_contexts_ && r.ok(); ++c) {
    for (unsigned w = 0; w < kWords; ++w) {
      ctxs[c].enable[w] = r.u32();
      if (ctxs[c].enable[w] & ~kValidMask[w]) r.fail("enable bits for sources that do not exist");
    }
    ctxs[c].threshold = r.u32();
    if (ctxs[c].threshold > kPriorityMask) {
      r.fail("threshold of context " + std::to_string(c) + " out of range");
    }
  }
  r.end();
  if (!r.ok()) return;
  priority_ = priority;
  line_ = line;
  pending_ = pending;
  in_service_ = in_service;
  for (unsigned c = 0; c < num_contexts_; ++c) {
    contexts_[c].enable = ctxs[c].enable;
    contexts_[c].threshold = ctxs[c].threshold;
  }
  update_outputs();
}

}  // namespace nimbus::devices
