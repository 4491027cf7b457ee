//===- runtime/cuda/Api.h - moert.h entry points on CUDA --------*- C++ -*-===//
//
// The CUDA backend behind the C ABI. runtime/cpu's entry points validate
// their arguments (extents, dtypes, view bounds: the one place for both
// backends) and then, for a world created with MOERT_BACKEND_CUDA, call the
// function of the same name here (MOERT_ROUTE_DEVICE in cpu/Backend.h).
// Buffers of a CUDA world hold device memory, so the validated views are
// device pointers. Errors are moert::Error; the caller's guard() maps them.
// Plain C++ (no CUDA types): included by the CPU sources.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CUDA_API_H
#define MOERT_CUDA_API_H

#include "runtime/moert.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moert::cuda::api {

// World: the launch environment names this process's rank; selects device
// LOCAL_RANK and creates the NCCL world communicator (see moert.h).
void createWorld(moert_world_t world);
// Runs fn once for this process's rank, then drains the stream.
void runWorld(moert_world_t world, moert_rank_fn_t fn, void *user);

void bufferAlloc(moert_context_t ctx, size_t bytes, moert_buffer_t *outBuffer);
// Never throws (moert_buffer_free returns nothing): a failure is logged.
void bufferFree(moert_context_t ctx, moert_buffer_t buffer);
void bufferUpload(moert_context_t ctx, moert_view_t dst, const void *src,
                  int64_t count);
void bufferDownload(moert_context_t ctx, void *dst, moert_view_t src,
                    int64_t count);
void bufferFill(moert_context_t ctx, moert_view_t dst, int64_t count,
                double value);
void bufferCopy(moert_context_t ctx, moert_view_t src, moert_view_t dst,
                int64_t count);

void router(moert_context_t ctx, moert_view_t x, moert_view_t wg,
            moert_view_t bias, moert_view_t logits, int64_t tokens,
            int64_t hidden, int64_t experts);
void gate(moert_context_t ctx, const moert_gate_config_t &cfg,
          moert_view_t logits, moert_view_t correctionBias, int64_t tokens,
          moert_view_t ids, moert_view_t weights, moert_view_t slots,
          moert_view_t counts, int64_t *capacity);
void gateScores(moert_context_t ctx, const moert_gate_config_t &cfg,
                moert_view_t logits, int64_t tokens, moert_view_t scores);
void gateSelect(moert_context_t ctx, const moert_gate_config_t &cfg,
                moert_view_t scores, moert_view_t correctionBias,
                int64_t tokens, moert_view_t ids, moert_view_t weights);
void gateSlots(moert_context_t ctx, const moert_gate_config_t &cfg,
               moert_view_t ids, moert_view_t weights, int64_t tokens,
               moert_view_t slots, moert_view_t counts, int64_t *capacity);
void gateNormalize(moert_context_t ctx, const moert_gate_config_t &cfg,
                   moert_view_t slots, int64_t tokens, moert_view_t weights);

void dispatch(moert_context_t ctx, moert_view_t x, moert_view_t ids,
              moert_view_t slots, moert_view_t buf, int64_t tokens,
              int64_t hidden, int64_t topK, int64_t experts, int64_t capacity);
void combine(moert_context_t ctx, moert_view_t y, moert_view_t ids,
             moert_view_t slots, moert_view_t weights, moert_view_t addend,
             moert_view_t out, int64_t tokens, int64_t hidden, int64_t topK,
             int64_t experts, int64_t capacity);
void fusedCombine(moert_context_t ctx, moert_view_t y, moert_view_t ids,
                  moert_view_t slots, moert_view_t weights,
                  moert_view_t mlpOut, moert_view_t wc, moert_view_t bc,
                  moert_view_t shared, moert_view_t wSg, moert_view_t x,
                  moert_view_t addend, moert_view_t out, int64_t tokens,
                  int64_t hidden, int64_t topK, int64_t experts,
                  int64_t capacity);

void experts(moert_context_t ctx, const moert_ffn_desc_t &ffn, moert_view_t in,
             moert_view_t out, moert_view_t rows, int64_t experts,
             int64_t capacity, int64_t blocks);
void expertsLinear(moert_context_t ctx, moert_view_t w, moert_view_t in,
                   moert_view_t out, moert_view_t rows, int64_t experts,
                   int64_t capacity, int64_t blocks, int64_t n, int64_t k);
void activation(moert_context_t ctx, moert_activation_t activation,
                moert_view_t x, moert_view_t out, int64_t count);
void multiply(moert_context_t ctx, moert_view_t a, moert_view_t b,
              moert_view_t out, int64_t count);
void fusedExperts(moert_context_t ctx, const moert_packed_ffn_desc_t &ffn,
                  moert_view_t in, moert_view_t out, moert_view_t rows,
                  int64_t experts, int64_t capacity, int64_t blocks,
                  const moert_packed_ffn_desc_t *shared, moert_view_t sharedX,
                  moert_view_t sharedOut, int64_t tokens);
void denseFfn(moert_context_t ctx, const moert_ffn_desc_t &ffn, moert_view_t x,
              moert_view_t out, int64_t tokens);

void residualMix(moert_context_t ctx, moert_view_t x, moert_view_t wc,
                 moert_view_t bc, moert_view_t moeOut, moert_view_t mlpOut,
                 moert_view_t out, int64_t tokens, int64_t hidden);
void sharedAdd(moert_context_t ctx, moert_view_t routed, moert_view_t shared,
               moert_view_t x, moert_view_t wSg, moert_view_t out,
               int64_t tokens, int64_t hidden);
void add(moert_context_t ctx, moert_view_t a, moert_view_t b, moert_view_t out,
         int64_t count);

// Groups: ncclCommSplit of the world communicator, so on CUDA creating a
// group is collective over the whole world (see moert.h).
void groupCreate(moert_context_t ctx, const std::vector<int32_t> &ranks,
                 moert_group_t *outGroup);
void barrier(moert_context_t ctx, moert_group_t group);
void allReduce(moert_context_t ctx, moert_group_t group, moert_reduce_op_t op,
               moert_view_t send, moert_view_t recv, int64_t count);
void allGather(moert_context_t ctx, moert_group_t group, moert_view_t send,
               moert_view_t recv, int64_t count);
void reduceScatter(moert_context_t ctx, moert_group_t group, moert_view_t send,
                   moert_view_t recv, int64_t count);
void allReduceI64(moert_context_t ctx, moert_group_t group,
                  moert_reduce_op_t op, int64_t *value);
void allToAll(moert_context_t ctx, moert_group_t group,
              moert_a2a_direction_t direction, moert_a2a_algorithm_t algorithm,
              moert_view_t send, moert_view_t recv, int64_t expertsLocal,
              int64_t capacity, int64_t hidden, int64_t slices);

// Weights: one expert's box, staged on the host, copied to dst + offset
// (elements of dst's dtype).
void storeWeights(moert_context_t ctx, const void *host, moert_view_t dst,
                  int64_t offset, int64_t count);

// Captured steps (moert_graph_*): stream capture of fn on this process's
// stream; calls that need the host inside it throw MOERT_UNSUPPORTED.
void graphCapture(moert_context_t ctx, moert_rank_fn_t fn, void *user,
                  moert_graph_t *outGraph);
// Launches the graph and waits for it, polling its communicators.
void graphReplay(moert_context_t ctx, moert_graph_t graph);
// Never throws (moert_graph_destroy returns nothing): a failure is logged.
void graphDestroy(moert_context_t ctx, moert_graph_t graph);

} // namespace moert::cuda::api

#endif // MOERT_CUDA_API_H
