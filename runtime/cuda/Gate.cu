//===- runtime/cuda/Gate.cu - Gate kernels --------------------------------===//
//
// One kernel per phase of GateIndex.h, each thread applying one step to one
// token, expert, chunk or choice. No atomics in the slot assignment, so
// slots are identical run to run and equal to the CPU reference's.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/Device.cuh"
#include "runtime/cuda/GateIndex.h"
#include "runtime/cuda/Kernels.h"

#include "runtime/common/Error.h"
#include "runtime/common/Gate.h"

#include <algorithm>
#include <vector>

using namespace moert;
using namespace moert::cuda;

namespace {

__global__ void scoreSelectKernel(moert_gate_config_t cfg, const float *logits,
                                  const float *bias, int64_t tokens,
                                  float *scores, float *sel, int32_t *ids,
                                  float *weights) {
  int64_t experts = cfg.experts, topK = cfg.top_k;
  MOERT_GRID_STRIDE(s, tokens) {
    scoreToken(cfg.score_func, cfg.experts, logits + s * experts,
               scores + s * experts);
    selectToken(cfg, scores + s * experts, bias, sel + s * experts,
                ids + s * topK, weights + s * topK);
  }
}

__global__ void countChunksKernel(const int32_t *ids, bool choiceMajor,
                                  int64_t tokens, int32_t topK, int32_t experts,
                                  int64_t chunks, int32_t *counts) {
  MOERT_GRID_STRIDE(i, chunks * experts) {
    countChunk(ids, choiceMajor, tokens, topK, experts, i / experts,
               static_cast<int32_t>(i % experts), counts);
  }
}

__global__ void scanChunksKernel(int32_t *counts, int64_t chunks,
                                 int32_t experts, int32_t *totals) {
  MOERT_GRID_STRIDE(e, experts) {
    totals[e] =
        scanChunkColumn(counts, chunks, experts, static_cast<int32_t>(e));
  }
}

__global__ void assignSlotsKernel(const int32_t *ids, bool choiceMajor,
                                  int64_t tokens, int32_t topK, int32_t experts,
                                  const int32_t *offsets, int32_t *slots) {
  MOERT_GRID_STRIDE(p, tokens * topK) {
    assignSlot(ids, choiceMajor, tokens, topK, experts, offsets, p, slots);
  }
}

__global__ void memberStartsKernel(const int32_t *totals, int32_t experts,
                                   int32_t *starts) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    memberStarts(totals, experts, starts);
}

// members[starts[e] + flat-order position] = flat choice index.
__global__ void buildMembersKernel(const int32_t *ids, const int32_t *tmSlots,
                                   const int32_t *starts, int64_t choices,
                                   int32_t *members) {
  MOERT_GRID_STRIDE(i, choices) {
    members[starts[ids[i]] + tmSlots[i]] = static_cast<int32_t>(i);
  }
}

__global__ void probsKeepKernel(const int32_t *ids, const int32_t *members,
                                const int32_t *starts, const int32_t *totals,
                                const float *weights, int64_t choices,
                                int64_t capacity, uint8_t *kept) {
  MOERT_GRID_STRIDE(i, choices) {
    int32_t e = ids[i];
    kept[i] = probsKept(members + starts[e], totals[e], weights, i, capacity);
  }
}

__global__ void probsSlotKernel(const int32_t *ids, const int32_t *members,
                                const int32_t *starts, const int32_t *tmSlots,
                                const uint8_t *kept, int64_t choices,
                                int32_t *slots) {
  MOERT_GRID_STRIDE(i, choices) {
    slots[i] =
        kept[i] ? probsSlot(members + starts[ids[i]], tmSlots[i], kept) : -1;
  }
}

__global__ void finishKernel(moert_gate_config_t cfg, int64_t tokens,
                             int64_t capacity, bool dropless, float *weights,
                             int32_t *slots) {
  int64_t topK = cfg.top_k;
  MOERT_GRID_STRIDE(s, tokens) {
    int32_t *slot = slots + s * topK;
    for (int64_t j = 0; !dropless && j < topK; ++j)
      if (slot[j] >= capacity)
        slot[j] = -1;
    normalizeTokenWeights(cfg, weights + s * topK, slot);
  }
}

__global__ void countsKernel(const int32_t *totals, int32_t experts,
                             int64_t capacity, bool dropless, int32_t *counts) {
  MOERT_GRID_STRIDE(e, experts) {
    int64_t total = totals[e];
    counts[e] =
        static_cast<int32_t>(dropless || total < capacity ? total : capacity);
  }
}

__global__ void scoreKernel(moert_gate_config_t cfg, const float *logits,
                            int64_t tokens, float *scores) {
  MOERT_GRID_STRIDE(s, tokens) {
    scoreToken(cfg.score_func, cfg.experts, logits + s * cfg.experts,
               scores + s * cfg.experts);
  }
}

__global__ void selectKernel(moert_gate_config_t cfg, const float *scores,
                             const float *bias, int64_t tokens, float *sel,
                             int32_t *ids, float *weights) {
  MOERT_GRID_STRIDE(s, tokens) {
    selectToken(cfg, scores + s * cfg.experts, bias, sel + s * cfg.experts,
                ids + s * cfg.top_k, weights + s * cfg.top_k);
  }
}

// Capacity drops of the slots stage alone (gate() folds them into
// finishKernel).
__global__ void dropKernel(int64_t choices, int64_t capacity, int32_t *slots) {
  MOERT_GRID_STRIDE(i, choices) {
    if (slots[i] >= capacity)
      slots[i] = -1;
  }
}

// Steps 7-8 on final slots (the normalize stage alone).
__global__ void normalizeKernel(moert_gate_config_t cfg, int64_t tokens,
                                const int32_t *slots, float *weights) {
  MOERT_GRID_STRIDE(s, tokens) {
    normalizeTokenWeights(cfg, weights + s * cfg.top_k, slots + s * cfg.top_k);
  }
}

__global__ void widenKernel(const void *src, moert_dtype_t dtype, int64_t n,
                            float *dst) {
  MOERT_GRID_STRIDE(i, n) { dst[i] = loadFloat(src, dtype, i); }
}

// The stage calls check what the CPU's do; gate and gateSlots, which
// assign slots, also the token rules (static capacity).
void checkGate(const moert_gate_config_t &cfg, int64_t tokens) {
  validateGateConfig(cfg); // the one home of the gate's rules
  require(cfg.n_group <= maxGateGroups, "gate: n_group ", cfg.n_group,
          " exceeds the CUDA backend's limit of ", maxGateGroups);
  require(tokens * cfg.top_k < INT32_MAX, "gate: ", tokens * cfg.top_k,
          " choices exceed the i32 index range");
}

void checkSlotGate(const moert_gate_config_t &cfg, int64_t tokens) {
  checkGate(cfg, tokens);
  validateGateTokens(cfg, tokens);
}

// fp32 correction bias (widened into scratch) or null.
const float *widenedBias(Context &ctx, Tensor correctionBias, int32_t experts) {
  if (!correctionBias.present())
    return nullptr;
  requireFloat(correctionBias.dtype, "correction_bias");
  auto *widened =
      static_cast<float *>(ctx.scratch(Scratch::Bias, experts * sizeof(float)));
  widenKernel<<<gridFor(experts), threadsPerBlock, 0, ctx.stream()>>>(
      correctionBias.data, correctionBias.dtype, experts, widened);
  MOERT_CUDA_CHECK_LAUNCH();
  return widened;
}

// Step 6 up to the capacity drops: slots in drop order (not yet cut at C),
// per-expert totals in Scratch::Totals; returns C.
int64_t orderSlots(Context &ctx, const moert_gate_config_t &cfg,
                   const int32_t *ids, const float *weights, int64_t tokens,
                   int32_t *slots, int32_t **totalsOut) {
  const int32_t experts = cfg.experts, topK = cfg.top_k;
  const int64_t choices = tokens * topK;
  const bool dropless = cfg.capacity_factor == 0.0;
  int64_t capacity = dropless ? 0 : capacityFor(cfg, tokens);
  cudaStream_t stream = ctx.stream();
  // Slots in drop order (PROBS first numbers choices in token order).
  const bool probs = !dropless && cfg.drop_order == MOERT_DROP_PROBS;
  const bool choiceMajor =
      !dropless && cfg.drop_order == MOERT_DROP_CHOICE_MAJOR;
  int64_t chunks = (choices + slotChunk - 1) / slotChunk;
  auto *chunkCounts = static_cast<int32_t *>(
      ctx.scratch(Scratch::ChunkCounts, chunks * experts * sizeof(int32_t)));
  auto *totals = static_cast<int32_t *>(
      ctx.scratch(Scratch::Totals, experts * sizeof(int32_t)));
  *totalsOut = totals;
  int32_t *orderSlots =
      probs ? static_cast<int32_t *>(
                  ctx.scratch(Scratch::TokenSlots, choices * sizeof(int32_t)))
            : slots;
  countChunksKernel<<<gridFor(chunks * experts), threadsPerBlock, 0, stream>>>(
      ids, choiceMajor, tokens, topK, experts, chunks, chunkCounts);
  MOERT_CUDA_CHECK_LAUNCH();
  scanChunksKernel<<<gridFor(experts), threadsPerBlock, 0, stream>>>(
      chunkCounts, chunks, experts, totals);
  MOERT_CUDA_CHECK_LAUNCH();
  assignSlotsKernel<<<gridFor(choices), threadsPerBlock, 0, stream>>>(
      ids, choiceMajor, tokens, topK, experts, chunkCounts, orderSlots);
  MOERT_CUDA_CHECK_LAUNCH();

  if (probs) {
    // The member table: every choice once, grouped by expert in flat order.
    auto *starts = static_cast<int32_t *>(
        ctx.scratch(Scratch::MemberStarts, experts * sizeof(int32_t)));
    auto *members = static_cast<int32_t *>(
        ctx.scratch(Scratch::Members, choices * sizeof(int32_t)));
    auto *kept = static_cast<uint8_t *>(ctx.scratch(Scratch::Kept, choices));
    memberStartsKernel<<<1, 1, 0, stream>>>(totals, experts, starts);
    MOERT_CUDA_CHECK_LAUNCH();
    buildMembersKernel<<<gridFor(choices), threadsPerBlock, 0, stream>>>(
        ids, orderSlots, starts, choices, members);
    MOERT_CUDA_CHECK_LAUNCH();
    probsKeepKernel<<<gridFor(choices), threadsPerBlock, 0, stream>>>(
        ids, members, starts, totals, weights, choices, capacity, kept);
    MOERT_CUDA_CHECK_LAUNCH();
    probsSlotKernel<<<gridFor(choices), threadsPerBlock, 0, stream>>>(
        ids, members, starts, orderSlots, kept, choices, slots);
    MOERT_CUDA_CHECK_LAUNCH();
  }

  if (dropless && cfg.static_capacity > 0) {
    capacity = cfg.static_capacity; // no read-back: capturable
  } else if (dropless) {
    std::vector<int32_t> hostTotals(experts);
    MOERT_CUDA_CHECK(cudaMemcpyAsync(hostTotals.data(), totals,
                                     experts * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, stream));
    MOERT_CUDA_CHECK(cudaStreamSynchronize(stream));
    capacity = *std::max_element(hostTotals.begin(), hostTotals.end());
  }
  return capacity;
}

void writeCounts(Context &ctx, const int32_t *totals, int32_t experts,
                 int64_t capacity, bool dropless, int32_t *counts) {
  countsKernel<<<gridFor(experts), threadsPerBlock, 0, ctx.stream()>>>(
      totals, experts, capacity, dropless, counts);
  MOERT_CUDA_CHECK_LAUNCH();
}

} // namespace

int64_t moert::cuda::gate(Context &ctx, const moert_gate_config_t &cfg,
                          const float *logits, Tensor correctionBias,
                          int64_t tokens, int32_t *ids, float *weights,
                          int32_t *slots, int32_t *counts) {
  checkSlotGate(cfg, tokens);
  const int32_t experts = cfg.experts;
  const bool dropless = cfg.capacity_factor == 0.0;
  cudaStream_t stream = ctx.stream();
  if (tokens == 0) {
    MOERT_CUDA_CHECK(
        cudaMemsetAsync(counts, 0, experts * sizeof(int32_t), stream));
    return dropless ? cfg.static_capacity : capacityFor(cfg, tokens);
  }
  const float *bias = widenedBias(ctx, correctionBias, experts);
  auto *scores = static_cast<float *>(
      ctx.scratch(Scratch::Scores, tokens * experts * sizeof(float)));
  auto *sel = static_cast<float *>(
      ctx.scratch(Scratch::Selection, tokens * experts * sizeof(float)));
  scoreSelectKernel<<<gridFor(tokens, 128), 128, 0, stream>>>(
      cfg, logits, bias, tokens, scores, sel, ids, weights);
  MOERT_CUDA_CHECK_LAUNCH();
  int32_t *totals = nullptr;
  int64_t capacity = orderSlots(ctx, cfg, ids, weights, tokens, slots, &totals);
  finishKernel<<<gridFor(tokens, 128), 128, 0, stream>>>(
      cfg, tokens, capacity, dropless, weights, slots);
  MOERT_CUDA_CHECK_LAUNCH();
  writeCounts(ctx, totals, experts, capacity, dropless, counts);
  return capacity;
}

void moert::cuda::gateScores(Context &ctx, const moert_gate_config_t &cfg,
                             const float *logits, int64_t tokens,
                             float *scores) {
  checkGate(cfg, tokens);
  if (tokens == 0)
    return;
  scoreKernel<<<gridFor(tokens, 128), 128, 0, ctx.stream()>>>(cfg, logits,
                                                              tokens, scores);
  MOERT_CUDA_CHECK_LAUNCH();
}

void moert::cuda::gateSelect(Context &ctx, const moert_gate_config_t &cfg,
                             const float *scores, Tensor correctionBias,
                             int64_t tokens, int32_t *ids, float *weights) {
  checkGate(cfg, tokens);
  if (tokens == 0)
    return;
  const float *bias = widenedBias(ctx, correctionBias, cfg.experts);
  auto *sel = static_cast<float *>(
      ctx.scratch(Scratch::Selection, tokens * cfg.experts * sizeof(float)));
  selectKernel<<<gridFor(tokens, 128), 128, 0, ctx.stream()>>>(
      cfg, scores, bias, tokens, sel, ids, weights);
  MOERT_CUDA_CHECK_LAUNCH();
}

int64_t moert::cuda::gateSlots(Context &ctx, const moert_gate_config_t &cfg,
                               const int32_t *ids, const float *weights,
                               int64_t tokens, int32_t *slots,
                               int32_t *counts) {
  checkSlotGate(cfg, tokens);
  const bool dropless = cfg.capacity_factor == 0.0;
  if (tokens == 0) {
    MOERT_CUDA_CHECK(cudaMemsetAsync(counts, 0, cfg.experts * sizeof(int32_t),
                                     ctx.stream()));
    return dropless ? cfg.static_capacity : capacityFor(cfg, tokens);
  }
  // The caller's ids index the per-expert tables: check them first (the
  // CPU backend's rule and message).
  int64_t choices = tokens * cfg.top_k;
  std::vector<int32_t> hostIds(choices);
  MOERT_CUDA_CHECK(cudaMemcpyAsync(hostIds.data(), ids,
                                   choices * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, ctx.stream()));
  MOERT_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
  for (int64_t i = 0; i < choices; ++i)
    require(hostIds[i] >= 0 && hostIds[i] < cfg.experts, "gate: choice ", i,
            " names expert ", hostIds[i], " outside [0, ", cfg.experts, ")");
  int32_t *totals = nullptr;
  int64_t capacity = orderSlots(ctx, cfg, ids, weights, tokens, slots, &totals);
  if (!dropless) {
    dropKernel<<<gridFor(choices), threadsPerBlock, 0, ctx.stream()>>>(
        choices, capacity, slots);
    MOERT_CUDA_CHECK_LAUNCH();
  }
  writeCounts(ctx, totals, cfg.experts, capacity, dropless, counts);
  return capacity;
}

void moert::cuda::gateNormalize(Context &ctx, const moert_gate_config_t &cfg,
                                const int32_t *slots, int64_t tokens,
                                float *weights) {
  checkGate(cfg, tokens);
  if (tokens == 0)
    return;
  normalizeKernel<<<gridFor(tokens, 128), 128, 0, ctx.stream()>>>(
      cfg, tokens, slots, weights);
  MOERT_CUDA_CHECK_LAUNCH();
}
