//===- runtime/cpu/Graph.cpp - Captured steps on the CPU backend ----------===//
//
// CUDA graphs remove kernel-launch overhead; the CPU backend runs every call
// directly and has nothing to capture, so it says so instead of pretending
// (a silent direct run would make --cuda-graphs timings meaningless).
// MOERT_BACKEND_CUDA contexts are routed to runtime/cuda/Api.cpp.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Backend.h"

using namespace moert;

extern "C" {

moert_status_t moert_graph_capture(moert_context_t ctx, moert_rank_fn_t fn,
                                   void *user, moert_graph_t *outGraph) {
  return guard("moert_graph_capture", [&] {
    cpu::checkContext(ctx);
    require(fn != nullptr && outGraph != nullptr, "null argument");
    *outGraph = nullptr;
    MOERT_ROUTE_DEVICE(ctx, graphCapture(ctx, fn, user, outGraph));
    fail(MOERT_UNSUPPORTED,
         "CUDA graphs need a MOERT_BACKEND_CUDA world; the CPU backend runs "
         "each step directly (run without --cuda-graphs)");
  });
}

moert_status_t moert_graph_replay(moert_context_t ctx, moert_graph_t graph) {
  return guard("moert_graph_replay", [&] {
    cpu::checkContext(ctx);
    require(graph != nullptr, "null graph");
    MOERT_ROUTE_DEVICE(ctx, graphReplay(ctx, graph));
    fail(MOERT_UNSUPPORTED, "the CPU backend has no captured graphs");
  });
}

void moert_graph_destroy(moert_context_t ctx, moert_graph_t graph) {
  // Only a CUDA world's capture makes graphs.
  if (!graph || !ctx)
    return;
  MOERT_ROUTE_DEVICE(ctx, graphDestroy(ctx, graph));
}

} // extern "C"
