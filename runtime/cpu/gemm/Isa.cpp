//===- runtime/cpu/gemm/Isa.cpp - CPU feature detection -------------------===//

#include "runtime/cpu/gemm/Isa.h"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

using namespace moert::cpu::gemm;

namespace {

#if defined(__x86_64__)
bool bit(unsigned value, int index) { return (value >> index) & 1u; }

// The OS enables a register state in XCR0 when it saves it on context
// switches; a feature the OS does not save cannot be used.
unsigned long long enabledStates() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

// Linux gives a process AMX tile data only on request (arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA), once for all its threads.
bool permitAmx() {
  constexpr int reqXcompPerm = 0x1023, xfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, reqXcompPerm, xfeatureXtiledata) == 0;
}

Isa detect() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !bit(ecx, 27)) // OSXSAVE
    return Isa::Generic;
  bool fma = bit(ecx, 12), f16c = bit(ecx, 29);
  unsigned long long states = enabledStates();
  constexpr unsigned long long avxStates = 0x6;     // SSE, AVX
  constexpr unsigned long long avx512States = 0xe6; // SSE, AVX, k, ZMM
  constexpr unsigned long long tileStates = 3ull << 17;
  if ((states & avxStates) != avxStates || !fma || !f16c ||
      !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !bit(ebx, 5)) // AVX2
    return Isa::Generic;
  if ((states & avx512States) != avx512States)
    return Isa::Avx2;
  // AVX-512 F, DQ, BW and VL: what the kernels' target attributes name.
  if (!bit(ebx, 16) || !bit(ebx, 17) || !bit(ebx, 30) || !bit(ebx, 31))
    return Isa::Avx2;
  bool amx = bit(edx, 22) && bit(edx, 24); // AMX-BF16, AMX-TILE
  unsigned eax1, ebx1, ecx1, edx1;
  bool bf16 = __get_cpuid_count(7, 1, &eax1, &ebx1, &ecx1, &edx1) &&
              bit(eax1, 5); // AVX512_BF16
  if (bf16 && amx && (states & tileStates) == tileStates && permitAmx())
    return Isa::Amx;
  return bf16 ? Isa::Avx512Bf16 : Isa::Avx512;
}
#else
Isa detect() { return Isa::Generic; }
#endif

// MOERT_CPU_ISA lowers the detected level (never raises it).
Isa capped(Isa detected) {
  const char *cap = std::getenv("MOERT_CPU_ISA");
  if (!cap)
    return detected;
  for (Isa level :
       {Isa::Generic, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx})
    if (std::strcmp(cap, isaName(level)) == 0)
      return level < detected ? level : detected;
  return detected;
}

} // namespace

Isa moert::cpu::gemm::detectedIsa() {
  static const Isa detected = detect();
  return detected;
}

Isa moert::cpu::gemm::isa() {
  static const Isa chosen = capped(detectedIsa());
  return chosen;
}

Decode moert::cpu::gemm::decode() {
  static const Decode chosen = [] {
    if (const char *name = std::getenv("MOERT_CPU_DECODE"))
      for (Decode d : {Decode::Rowwise, Decode::GroupsAhead})
        if (std::strcmp(name, decodeName(d)) == 0)
          return d;
#if defined(__x86_64__)
    unsigned eax, ebx, ecx, edx;
    // The vendor string, in EBX, EDX, ECX: "GenuineIntel".
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) && ebx == 0x756e6547 &&
        edx == 0x49656e69 && ecx == 0x6c65746e)
      return Decode::GroupsAhead;
#endif
    return Decode::Rowwise;
  }();
  return chosen;
}

const char *moert::cpu::gemm::decodeName(Decode decode) {
  return decode == Decode::Rowwise ? "rowwise" : "groups-ahead";
}

bool moert::cpu::gemm::hasAvx512Vbmi() {
#if defined(__x86_64__)
  // Once: CPUID exits to the hypervisor in a VM, and every quantized
  // grouped GEMM asks.
  static const bool vbmi = [] {
    unsigned eax, ebx, ecx, edx;
    return detectedIsa() >= Isa::Avx512 &&
           __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && bit(ecx, 1);
  }();
  return vbmi;
#else
  return false;
#endif
}

const char *moert::cpu::gemm::isaName(Isa isa) {
  switch (isa) {
  case Isa::Generic:
    return "generic";
  case Isa::Avx2:
    return "avx2";
  case Isa::Avx512:
    return "avx512";
  case Isa::Avx512Bf16:
    return "avx512bf16";
  case Isa::Amx:
    return "amx";
  }
  return "unknown";
}
