// Software paths of the FPU (fpu.cpp), outside the public interface: RMM and the
// hosts without FMA use them, and the unit tests cross-check them against the host.
#pragma once

#include <cstdint>

namespace nimbus::cpu::fpu::detail {

uint64_t soft_add_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags);
uint64_t soft_mul_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags);
uint64_t soft_div_d(uint64_t a, uint64_t b, uint32_t rm, uint32_t& flags);
uint64_t soft_fma_d(uint64_t a, uint64_t b, uint64_t c, uint32_t rm, uint32_t& flags);
uint32_t soft_cvt_s_d(uint64_t a, uint32_t rm, uint32_t& flags);
// Single precision computed in double with round-to-odd, then rounded once.
uint32_t odd_add_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags);
uint32_t odd_mul_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags);
uint32_t odd_div_s(uint32_t a, uint32_t b, uint32_t rm, uint32_t& flags);
uint32_t odd_fma_s(uint32_t a, uint32_t b, uint32_t c, uint32_t rm, uint32_t& flags);

}  // namespace nimbus::cpu::fpu::detail
