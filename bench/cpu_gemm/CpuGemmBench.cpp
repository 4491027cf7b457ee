//===- CpuGemmBench.cpp - one weight matrix on the CPU GEMM kernels -------===//
//
// Times the CPU backend's grouped GEMM (groupedLinear, runtime/cpu) on one
// weight matrix [n, k] for each row count: moe-bench-cpu-layer's expert
// GEMMs without the router, gate, dispatch or combine, for tuning the kernels
// (runtime/cpu/gemm). --footprint-mb MB of copies of the matrix are used in
// turn, so past the last-level cache each call reads its weights from DRAM
// (the default, 256); 0 keeps one copy, which then stays in the caches.
// The copies lie end to end in memory allocated as the CPU backend's
// buffers are (allocateHost: 2 MB pages), as a stacked expert weight does.
// Prints per row count the median time, the weights' GB/s and the GFLOP/s;
// `read GB/s`, a plain read of the same copies by as many threads
// (FloorReader: the faster of its two ways), timed in turn with the calls; and
// `peak GB/s`, the weights' rate at which the kernel's multiply-adds alone
// would take all the time at the vector unit's measured peak (VDPBF16PS for
// bf16, VFMADD231PS for f32, 512-bit, on every thread): past it a step is bound
// by the core, not by memory.
//
// usage: moe-bench-cpu-gemm [--n N] [--k K] [--rows 1,4,16]
//          [--dtype bf16|f32] [--threads T] [--footprint-mb MB]
//          [--min-seconds S]
//
//===----------------------------------------------------------------------===//

#include "bench/common/FloorReader.h"
#include "runtime/cpu/Backend.h"
#include "runtime/cpu/GroupedGemm.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace moert::cpu;

namespace {

struct Options {
  int64_t n = 4096, k = 4096;
  std::vector<int64_t> rows = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48};
  moert_dtype_t dtype = MOERT_BF16; // weights and X
  int threads = 1;
  int64_t footprintMegabytes = 256;
  double minSeconds = 1.0;
};

[[noreturn]] void usage(const char *why) {
  std::fprintf(stderr,
               "moe-bench-cpu-gemm: %s\nusage: moe-bench-cpu-gemm [--n N] "
               "[--k K] [--rows 1,4,16] [--dtype bf16|f32] [--threads T] "
               "[--footprint-mb MB] [--min-seconds S]\n",
               why);
  std::exit(2);
}

int64_t positive(const std::string &flag, const std::string &value,
                 int64_t least) {
  char *end = nullptr;
  long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end || v < least)
    usage((flag + " needs an integer of at least " + std::to_string(least))
              .c_str());
  return v;
}

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (i + 1 >= argc)
      usage(("flag " + flag + " needs a value").c_str());
    std::string value = argv[i + 1];
    if (flag == "--n")
      o.n = positive(flag, value, 1);
    else if (flag == "--k")
      o.k = positive(flag, value, 1);
    else if (flag == "--threads")
      o.threads = static_cast<int>(positive(flag, value, 1));
    else if (flag == "--footprint-mb")
      o.footprintMegabytes = positive(flag, value, 0);
    else if (flag == "--min-seconds") {
      char *end = nullptr;
      o.minSeconds = std::strtod(value.c_str(), &end);
      if (value.empty() || *end || !(o.minSeconds >= 0))
        usage("--min-seconds needs a number of at least 0");
    } else if (flag == "--dtype" && (value == "bf16" || value == "f32"))
      o.dtype = value == "bf16" ? MOERT_BF16 : MOERT_F32;
    else if (flag == "--rows") {
      o.rows.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');)
        o.rows.push_back(positive(flag, item, 1));
    } else
      usage(("unknown flag or value: " + flag + " " + value).c_str());
  }
  return o;
}

#if defined(__x86_64__)
// One core's multiply-add peak in GFLOP/s: 12 independent accumulators
// (more than the latency x throughput of either instruction), in registers.
constexpr long peakSteps = 20000000;
constexpr int peakChains = 12;

double gflops(std::chrono::steady_clock::time_point t0, double flopsPerOp) {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  return peakSteps * peakChains * flopsPerOp / seconds / 1e9;
}

__attribute__((target("avx512f,avx512bf16"))) double bf16Peak() {
  __m512 acc[peakChains];
  for (__m512 &chain : acc)
    chain = _mm512_setzero_ps();
  __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80);
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < peakSteps; ++i) {
#pragma GCC unroll 12
    for (__m512 &chain : acc)
      chain = _mm512_dpbf16_ps(chain, a, a);
    __asm__("" : "+v"(a));
  }
  for (__m512 &chain : acc)
    __asm__("" : : "v"(chain));
  return gflops(t0, 64);
}

__attribute__((target("avx512f"))) double f32Peak() {
  __m512 acc[peakChains];
  for (__m512 &chain : acc)
    chain = _mm512_setzero_ps();
  __m512 a = _mm512_set1_ps(1.0f);
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < peakSteps; ++i) {
#pragma GCC unroll 12
    for (__m512 &chain : acc)
      chain = _mm512_fmadd_ps(a, a, chain);
    __asm__("" : "+v"(a));
  }
  for (__m512 &chain : acc)
    __asm__("" : : "v"(chain));
  return gflops(t0, 32);
}
#endif

// The peak of the instruction the kernels use for `dtype`, or 0 where this
// CPU lacks it.
double vectorPeak(moert_dtype_t dtype) {
#if defined(__x86_64__)
  if (dtype == MOERT_BF16 && __builtin_cpu_supports("avx512bf16"))
    return bf16Peak();
  if (dtype == MOERT_F32 && __builtin_cpu_supports("avx512f"))
    return f32Peak();
#endif
  (void)dtype;
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  Options o = parse(argc, argv);
  size_t element = o.dtype == MOERT_BF16 ? 2 : 4;
  size_t matrixBytes = o.n * o.k * element;
  size_t copies = std::max<size_t>(1, (o.footprintMegabytes << 20) /
                                          std::max<size_t>(matrixBytes, 1));
  // Values in [1, 2) (1 + (i mod 128) / 128, exact in bf16 and f32): the
  // timing does not depend on them.
  std::unique_ptr<char, decltype(&std::free)> weights(
      static_cast<char *>(allocateHost(copies * matrixBytes)), &std::free);
  if (!weights) {
    std::fprintf(stderr, "cannot allocate %zu copies of %zu bytes\n", copies,
                 matrixBytes);
    return 1;
  }
  for (size_t c = 0; c < copies; ++c)
    for (size_t i = 0; i < matrixBytes / element; ++i) {
      uint16_t bf16 = 0x3f80 + (i & 0x7f);
      uint32_t f32 = static_cast<uint32_t>(bf16) << 16;
      std::memcpy(weights.get() + c * matrixBytes + i * element,
                  element == 2 ? (void *)&bf16 : (void *)&f32, element);
    }
  int64_t maxRows = *std::max_element(o.rows.begin(), o.rows.end());
  std::vector<char> x(maxRows * o.k * element);
  for (size_t i = 0; i < x.size(); i += element)
    std::memcpy(x.data() + i, weights.get(), element);
  std::vector<float> y(maxRows * o.n);
  GemmContext context(o.threads);
  size_t next = 0;
  auto call = [&](int64_t rows) {
    LinearProblem problem{{x.data(),
                           o.dtype,
                           reinterpret_cast<char *>(y.data()),
                           MOERT_F32,
                           {{0, rows}}},
                          weights.get() + next * matrixBytes,
                          nullptr};
    next = (next + 1) % copies;
    groupedLinear(context, {problem}, o.dtype, o.n, o.k);
  };
  double peak = vectorPeak(o.dtype) * o.threads;
  std::printf("n %lld, k %lld, %s, %d thread(s), %zu cop%s of %.1f MB\n",
              static_cast<long long>(o.n), static_cast<long long>(o.k),
              o.dtype == MOERT_BF16 ? "bf16" : "f32", o.threads, copies,
              copies == 1 ? "y" : "ies", matrixBytes / 1e6);
  if (peak > 0)
    std::printf("vector peak %.1f GFLOP/s (%s, 512-bit, %d thread(s))\n", peak,
                o.dtype == MOERT_BF16 ? "VDPBF16PS" : "VFMADD231PS", o.threads);
  else
    std::printf("vector peak unmeasured (no AVX-512%s here)\n",
                o.dtype == MOERT_BF16 ? "-BF16" : "");
  std::printf("%6s %12s %10s %10s %10s %10s %6s\n", "rows", "median us", "GB/s",
              "GFLOP/s", "read GB/s", "peak GB/s", "runs");
  moe_bench::FloorReader reader(o.threads);
  auto median = [](std::vector<double> &samples) {
    std::nth_element(samples.begin(), samples.begin() + samples.size() / 2,
                     samples.end());
    return samples[samples.size() / 2];
  };
  for (int64_t rows : o.rows) {
    for (size_t c = 0; c < copies; ++c)
      call(rows); // warm-up: every copy paged in
    std::vector<double> samples;
    double timed = 0;
    while (samples.size() < 3 || timed < o.minSeconds) {
      // The read takes a copy of its own, the one before the call's, so that
      // it meets memory as the calls do: past the caches with several
      // copies, in them with one.
      timed +=
          reader.sample({{weights.get() + next * matrixBytes, matrixBytes}});
      next = (next + 1) % copies;
      auto t0 = std::chrono::steady_clock::now();
      call(rows);
      samples.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count());
      timed += samples.back();
    }
    double seconds = median(samples), flops = 2.0 * rows * o.n * o.k;
    std::printf("%6lld %12.1f %10.1f %10.1f %10.1f %10.1f %6zu\n",
                static_cast<long long>(rows), seconds * 1e6,
                matrixBytes / seconds / 1e9, flops / seconds / 1e9,
                matrixBytes / reader.floor() / 1e9,
                peak > 0 ? matrixBytes * peak / flops : 0.0, samples.size());
  }
  return 0;
}
