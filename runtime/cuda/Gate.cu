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
#include "runtime/cpu/Gate.h"

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

// members[e * S + token-order position] = flat choice index.
__global__ void buildMembersKernel(const int32_t *ids, const int32_t *tmSlots,
                                   int64_t tokens, int64_t choices,
                                   int32_t *members) {
  MOERT_GRID_STRIDE(i, choices) {
    members[ids[i] * tokens + tmSlots[i]] = static_cast<int32_t>(i);
  }
}

__global__ void probsKeepKernel(const int32_t *ids, const int32_t *members,
                                const int32_t *totals, const float *weights,
                                int64_t tokens, int32_t topK, int64_t capacity,
                                uint8_t *kept) {
  MOERT_GRID_STRIDE(i, tokens * topK) {
    int32_t e = ids[i];
    kept[i] =
        probsKept(members + e * tokens, totals[e], weights, topK, i, capacity);
  }
}

__global__ void probsSlotKernel(const int32_t *ids, const int32_t *members,
                                const int32_t *tmSlots, const uint8_t *kept,
                                int64_t tokens, int32_t topK, int32_t *slots) {
  MOERT_GRID_STRIDE(i, tokens * topK) {
    slots[i] =
        kept[i] ? probsSlot(members + ids[i] * tokens, tmSlots[i], kept) : -1;
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
    finishToken(cfg, weights + s * topK, slot);
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

__global__ void widenKernel(const void *src, moert_dtype_t dtype, int64_t n,
                            float *dst) {
  MOERT_GRID_STRIDE(i, n) { dst[i] = loadFloat(src, dtype, i); }
}

} // namespace

int64_t moert::cuda::gate(Context &ctx, const moert_gate_config_t &cfg,
                          const float *logits, Tensor correctionBias,
                          int64_t tokens, int32_t *ids, float *weights,
                          int32_t *slots, int32_t *counts) {
  cpu::validateGateConfig(cfg); // the one home of the gate's rules
  require(cfg.n_group <= maxGateGroups, "gate: n_group ", cfg.n_group,
          " exceeds the CUDA backend's limit of ", maxGateGroups);
  require(tokens >= 0, "tokens must be >= 0, got ", tokens);
  require(tokens * cfg.top_k < INT32_MAX, "gate: ", tokens * cfg.top_k,
          " choices exceed the i32 index range");
  const int32_t experts = cfg.experts, topK = cfg.top_k;
  const int64_t choices = tokens * topK;
  const bool dropless = cfg.capacity_factor == 0.0;
  int64_t capacity = dropless ? 0 : capacityFor(cfg, tokens);
  cudaStream_t stream = ctx.stream();
  if (choices == 0) {
    MOERT_CUDA_CHECK(
        cudaMemsetAsync(counts, 0, experts * sizeof(int32_t), stream));
    return capacity;
  }

  const float *bias = nullptr;
  if (correctionBias.present()) {
    requireFloat(correctionBias.dtype, "correction_bias");
    auto *widened = static_cast<float *>(
        ctx.scratch(Scratch::Bias, experts * sizeof(float)));
    widenKernel<<<gridFor(experts), threadsPerBlock, 0, stream>>>(
        correctionBias.data, correctionBias.dtype, experts, widened);
    MOERT_CUDA_CHECK_LAUNCH();
    bias = widened;
  }
  auto *scores = static_cast<float *>(
      ctx.scratch(Scratch::Scores, tokens * experts * sizeof(float)));
  auto *sel = static_cast<float *>(
      ctx.scratch(Scratch::Selection, tokens * experts * sizeof(float)));
  scoreSelectKernel<<<gridFor(tokens, 128), 128, 0, stream>>>(
      cfg, logits, bias, tokens, scores, sel, ids, weights);
  MOERT_CUDA_CHECK_LAUNCH();

  // Slots in drop order (PROBS first numbers choices in token order).
  const bool probs = !dropless && cfg.drop_order == MOERT_DROP_PROBS;
  const bool choiceMajor =
      !dropless && cfg.drop_order == MOERT_DROP_CHOICE_MAJOR;
  int64_t chunks = (choices + slotChunk - 1) / slotChunk;
  auto *chunkCounts = static_cast<int32_t *>(
      ctx.scratch(Scratch::ChunkCounts, chunks * experts * sizeof(int32_t)));
  auto *totals = static_cast<int32_t *>(
      ctx.scratch(Scratch::Totals, experts * sizeof(int32_t)));
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
    // An expert appears at most once per token: S members per expert.
    auto *members = static_cast<int32_t *>(
        ctx.scratch(Scratch::Members, experts * tokens * sizeof(int32_t)));
    auto *kept = static_cast<uint8_t *>(ctx.scratch(Scratch::Kept, choices));
    buildMembersKernel<<<gridFor(choices), threadsPerBlock, 0, stream>>>(
        ids, orderSlots, tokens, choices, members);
    MOERT_CUDA_CHECK_LAUNCH();
    probsKeepKernel<<<gridFor(choices), threadsPerBlock, 0, stream>>>(
        ids, members, totals, weights, tokens, topK, capacity, kept);
    MOERT_CUDA_CHECK_LAUNCH();
    probsSlotKernel<<<gridFor(choices), threadsPerBlock, 0, stream>>>(
        ids, members, orderSlots, kept, tokens, topK, slots);
    MOERT_CUDA_CHECK_LAUNCH();
  }

  if (dropless) {
    std::vector<int32_t> hostTotals(experts);
    MOERT_CUDA_CHECK(cudaMemcpyAsync(hostTotals.data(), totals,
                                     experts * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, stream));
    MOERT_CUDA_CHECK(cudaStreamSynchronize(stream));
    capacity = *std::max_element(hostTotals.begin(), hostTotals.end());
  }
  finishKernel<<<gridFor(tokens, 128), 128, 0, stream>>>(
      cfg, tokens, capacity, dropless, weights, slots);
  MOERT_CUDA_CHECK_LAUNCH();
  countsKernel<<<gridFor(experts), threadsPerBlock, 0, stream>>>(
      totals, experts, capacity, dropless, counts);
  MOERT_CUDA_CHECK_LAUNCH();
  return capacity;
}
