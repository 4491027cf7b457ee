//===- runtime/cpu/gemm/Isa.h - Which GEMM kernels this CPU runs -*- C++ -*-===//
//
// The kernels are chosen once per process from what the CPU and the OS
// support: AMX tiles for bf16, AVX-512-BF16 dot products, AVX-512 FMA,
// AVX2 FMA, or the portable C++ path that builds everywhere (aarch64
// included). The environment variable MOERT_CPU_ISA (generic, avx2, avx512,
// avx512bf16, amx)
// caps the choice, so that tests and benchmarks reach every path on one
// machine. How the AVX-512 row-dot kernels stream a decode step's weights
// is chosen per CPU vendor (Decode), MOERT_CPU_DECODE (rowwise,
// groups-ahead) overriding it for benchmarks.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_ISA_H
#define MOERT_CPU_GEMM_ISA_H

namespace moert::cpu::gemm {

// Ordered: each level has everything of the ones before it.
enum class Isa { Generic, Avx2, Avx512, Avx512Bf16, Amx };

// The kernels this process uses (detected and, for AMX, permitted once).
Isa isa();
// What the CPU and OS support, before MOERT_CPU_ISA (tests run every path
// the machine has).
Isa detectedIsa();
const char *isaName(Isa isa);
// AVX512_VBMI (VPERMT2B), which the FP8 kernel of the AVX-512-BF16 level
// also needs: Cooper Lake has AVX512_BF16 without it.
bool hasAvx512Vbmi();

// How the AVX-512 row-dot kernels (DotKernel.h) read the weights of 1 to 3
// rows of X, each measured best on one CPU.
enum class Decode {
  // Zen 4: 1 or 2 short rows one weight row at a time, more in half
  // groups (4 weight rows) that stream the next item.
  Rowwise,
  // Intel (Sapphire Rapids): whole groups, 8 weight rows at once, each
  // asking for its line 256 bytes ahead.
  GroupsAhead,
};
// GroupsAhead on Intel CPUs, else Rowwise (or what MOERT_CPU_DECODE names).
Decode decode();
const char *decodeName(Decode decode);

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_ISA_H
