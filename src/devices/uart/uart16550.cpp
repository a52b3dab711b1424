#include "devices/uart/uart16550.h"

#include <algorithm>
#include <vector>

namespace nimbus::devices {

Uart16550::Uart16550(std::function<void(uint8_t)> tx, std::function<void(bool)> irq)
    : tx_(std::move(tx)), irq_(std::move(irq)) {}

uint8_t Uart16550::iir_locked() const {
  const uint8_t fifo = fifos_enabled_ ? kIirFifos : 0;
  if ((ier_ & kIerRxData) && rx_count_ > 0) return fifo | kIirRxData;
  if ((ier_ & kIerThre) && thre_pending_) return fifo | kIirThre;
  return fifo | kIirNone;
}

void Uart16550::update_irq_locked() {
  const bool level = (iir_locked() & kIirNone) == 0;
  if (level != irq_level_) {
    irq_level_ = level;
    irq_(level);
  }
}

void Uart16550::rx_push_locked(uint8_t byte) {
  if (rx_count_ == kRxCapacity) {
    overrun_ = true;
    return;
  }
  rx_[(rx_head_ + rx_count_) % kRxCapacity] = byte;
  ++rx_count_;
}

bool Uart16550::read(uint64_t offset, unsigned size, uint64_t& value) {
  value = 0;
  if (offset >= kSize) return false;
  std::lock_guard<std::mutex> lock(mu_);
  const bool dlab = lcr_ & kLcrDlab;
  uint8_t v = 0;
  switch (offset) {
    case kRbrThrDll:
      if (dlab) {
        v = dll_;
      } else if (rx_count_ > 0) {
        v = rx_[rx_head_];
        rx_head_ = (rx_head_ + 1) % kRxCapacity;
        --rx_count_;
      }
      break;
    case kIerDlm:
      v = dlab ? dlm_ : ier_;
      break;
    case kIirFcr:
      v = iir_locked();
      // Reading IIR while it reports THR empty acknowledges that interrupt.
      if ((v & 0x0f) == kIirThre) thre_pending_ = false;
      break;
    case kLcr:
      v = lcr_;
      break;
    case kMcr:
      v = mcr_;
      break;
    case kLsr:
      v = kLsrThre | kLsrTemt | (rx_count_ > 0 ? kLsrDr : 0) | (overrun_ ? kLsrOe : 0);
      overrun_ = false;  // OE clears on read
      break;
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
        v = static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) |
                                 ((mcr_ & 0x0c) << 4));
      } else {
        v = 0xb0;  // DCD, DSR, CTS: a modem that is always ready
      }
      break;
    case kScr:
      v = scr_;
      break;
    default:
      break;
  }
  value = v;
  update_irq_locked();
  return true;
}

bool Uart16550::write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset >= kSize) return false;
  const uint8_t v = static_cast<uint8_t>(value);
  std::lock_guard<std::mutex> lock(mu_);
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kRbrThrDll:
      if (dlab) {
        dll_ = v;
      } else {
        if (mcr_ & kMcrLoop) {
          rx_push_locked(v);
        } else {
          tx_(v);
        }
        thre_pending_ = true;  // transmission is instant: THR is empty again
      }
      break;
    case kIerDlm:
      if (dlab) {
        dlm_ = v;
      } else {
        const uint8_t old = ier_;
        ier_ = v & 0x0f;
        // ETBEI 0 -> 1 with THR empty (always) raises the THR-empty interrupt.
        if ((ier_ & kIerThre) && !(old & kIerThre)) thre_pending_ = true;
      }
      break;
    case kIirFcr:
      fifos_enabled_ = v & 0x01;
      if (v & 0x02) {  // clear the RX FIFO
        rx_head_ = 0;
        rx_count_ = 0;
      }
      break;
    case kLcr:
      lcr_ = v;
      break;
    case kMcr:
      mcr_ = v & 0x1f;
      break;
    case kScr:
      scr_ = v;
      break;
    default:
      break;  // LSR, MSR are read-only; 8.. are not registers
  }
  update_irq_locked();
  return true;
}

bool Uart16550::push_input(uint8_t byte) {
  std::lock_guard<std::mutex> lock(mu_);
  if (rx_count_ == kRxCapacity) {
    overrun_ = true;
    return false;
  }
  rx_push_locked(byte);
  update_irq_locked();
  return true;
}

bool Uart16550::has_input_space() {
  std::lock_guard<std::mutex> lock(mu_);
  return rx_count_ < kRxCapacity;
}

void Uart16550::save_state(StateWriter& w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w.begin("uart16550");
  std::vector<uint8_t> rx(rx_count_);
  for (size_t i = 0; i < rx_count_; ++i) rx[i] = rx_[(rx_head_ + i) % kRxCapacity];
  w.blob(rx.data(), rx.size());
  w.b(overrun_);
  w.b(thre_pending_);
  w.b(fifos_enabled_);
  for (uint8_t v : {ier_, lcr_, mcr_, scr_, dll_, dlm_}) w.u8(v);
  w.end();
}

void Uart16550::load_state(StateReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  r.begin("uart16550");
  const std::vector<uint8_t> rx = r.blob(kRxCapacity);
  const bool overrun = r.b(), thre_pending = r.b(), fifos_enabled = r.b();
  const uint8_t ier = r.u8(), lcr = r.u8(), mcr = r.u8(), scr = r.u8(), dll = r.u8(), dlm = r.u8();
  if (r.ok() && (ier & ~0x0f)) r.fail("IER has reserved bits set");
  if (r.ok() && (mcr & ~0x1f)) r.fail("MCR has reserved bits set");
  r.end();
  if (!r.ok()) return;
  std::copy(rx.begin(), rx.end(), rx_.begin());
  rx_head_ = 0;
  rx_count_ = rx.size();
  overrun_ = overrun;
  thre_pending_ = thre_pending;
  fifos_enabled_ = fifos_enabled;
  ier_ = ier;
  lcr_ = lcr;
  mcr_ = mcr;
  scr_ = scr;
  dll_ = dll;
  dlm_ = dlm;
  update_irq_locked();
}

}  // namespace nimbus::devices
