//===- runtime/api/Graph.cpp - Captured steps -----------------------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

using namespace moert;
using namespace moert::api;

extern "C" {

moert_status_t moert_graph_capture(moert_context_t ctx, moert_rank_fn_t fn,
                                   void *user, moert_graph_t *outGraph) {
  return guard("moert_graph_capture", [&] {
    checkContext(ctx);
    require(fn != nullptr && outGraph != nullptr, "null argument");
    *outGraph = nullptr;
    auto graph = std::make_unique<moert_graph_s>();
    graph->state =
        ctx->backend().captureGraph(ctx->rank, [&](std::string &message) {
          return runRankFunction(ctx, fn, user, message);
        });
    *outGraph = graph.release();
  });
}

moert_status_t moert_graph_replay(moert_context_t ctx, moert_graph_t graph) {
  return guard("moert_graph_replay", [&] {
    checkContext(ctx);
    require(graph != nullptr, "null graph");
    ctx->backend().replayGraph(ctx->rank, *graph->state);
  });
}

void moert_graph_destroy(moert_context_t ctx, moert_graph_t graph) {
  if (!graph || !ctx)
    return;
  std::unique_ptr<moert_graph_s> owned(graph);
  // Nothing to return: a failure is left in the last error.
  guard("moert_graph_destroy",
        [&] { ctx->backend().destroyGraph(ctx->rank, *graph->state); });
}

} // extern "C"
