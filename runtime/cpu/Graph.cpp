//===- runtime/cpu/Graph.cpp - Captured steps on the CPU backend ----------===//
//
// CUDA graphs remove kernel-launch overhead; the CPU backend runs every call
// directly and has nothing to capture, so it says so instead of pretending
// (a silent direct run would make --cuda-graphs timings meaningless).
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/Error.h"

using namespace moert;
using namespace moert::cpu;

namespace {
// captureGraph refuses, so no graph of this backend exists to replay or
// destroy.
constexpr const char *noGraphs = "the CPU backend has no captured graphs";
} // namespace

std::unique_ptr<GraphState> CpuBackend::captureGraph(int32_t rank,
                                                     const StepBody &step) {
  fail(MOERT_UNSUPPORTED,
       "CUDA graphs need a MOERT_BACKEND_CUDA world; the CPU backend runs "
       "each step directly (run without --cuda-graphs)");
}

void CpuBackend::replayGraph(int32_t rank, GraphState &graph) {
  fail(MOERT_UNSUPPORTED, noGraphs);
}

void CpuBackend::destroyGraph(int32_t rank, GraphState &graph) {
  fail(MOERT_UNSUPPORTED, noGraphs);
}
