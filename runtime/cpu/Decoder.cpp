//===- runtime/cpu/Decoder.cpp - Linear, embedding, RoPE, attention
//--------===//
//
// The decoder's kernels: GEMMs through the grouped GEMM (GroupedGemm.h),
// attention one (token, kv head) per work item on the rank's threads, fp32
// throughout with outputs rounded once to their dtype.
//
//===----------------------------------------------------------------------===//
#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/common/Rope.h"
#include "runtime/cpu/AttentionRows.h"
#include "runtime/cpu/Backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

using namespace moert;
using namespace moert::cpu;

namespace {

// Scratch slots past those of Kernels.cpp.
enum DecoderSlot : size_t {
  slotLinearBias = 32,
  slotRopeTable = 33,
  slotAttentionSinks = 34
};

// The (sequence, position) of token s, checked against the cache.
std::pair<int64_t, int64_t> cacheSlot(const Operand &sequences,
                                      const Operand &positions, int64_t s,
                                      const KvCacheShape &shape) {
  int64_t b = sequences.as<const int32_t>()[s];
  int64_t p = positions.as<const int32_t>()[s];
  require(b >= 0 && b < shape.maxBatch && p >= 0 && p < shape.maxSeq, "token ",
          s, " has sequence ", b, " position ", p, " outside the KV cache [",
          shape.maxBatch, " sequences x ", shape.maxSeq, " positions]");
  return {b, p};
}

// Up to 32 consecutive tokens of one sequence at consecutive positions: an
// attention work item, whose tokens read the same cached rows.
struct TokenBlock {
  int64_t first, count;
};

std::vector<TokenBlock> tokenBlocks(const int32_t *sequences,
                                    const int32_t *positions, int64_t tokens) {
  constexpr int64_t maxTokens = 32;
  std::vector<TokenBlock> blocks;
  for (int64_t s = 0; s < tokens; ++s) {
    if (!blocks.empty()) {
      TokenBlock &open = blocks.back();
      int64_t previous = open.first + open.count - 1;
      if (open.count < maxTokens && sequences[s] == sequences[previous] &&
          positions[s] == positions[previous] + 1) {
        ++open.count;
        continue;
      }
    }
    blocks.push_back({s, 1});
  }
  return blocks;
}

} // namespace

void CpuBackend::linear(int32_t rank, Operand x, Operand w, Operand bias,
                        Operand out, int64_t tokens, int64_t n, int64_t k) {
  if (tokens == 0)
    return;
  const float *b = bias.present()
                       ? floatInput(scratch(rank), slotLinearBias, bias, n)
                       : nullptr;
  ProblemRows rows{x.as<const char>(),
                   x.dtype,
                   out.as<char>(),
                   out.dtype,
                   {RowRun{0, tokens}}};
  groupedLinear(gemm(rank), {LinearProblem{rows, w.data, b}}, w.dtype, n, k);
}

void CpuBackend::embedding(int32_t rank, Operand ids, Operand table,
                           Operand out, int64_t tokens, int64_t vocab,
                           int64_t hidden) {
  const int32_t *id = ids.as<const int32_t>();
  for (int64_t s = 0; s < tokens; ++s) {
    require(id[s] >= 0 && id[s] < vocab, "token ", s, " has id ", id[s],
            " outside the vocabulary [0, ", vocab, ")");
    convert(table.at(id[s] * hidden).data, table.dtype, out.at(s * hidden).data,
            out.dtype, hidden);
  }
}

void CpuBackend::rope(int32_t rank, const moert_rope_config_t &cfg, Operand x,
                      Operand positions, int64_t tokens, int64_t heads,
                      int64_t headDim) {
  const int64_t rotaryDim = ropeRotaryDim(cfg, headDim), half = rotaryDim / 2;
  const int32_t *pos = positions.as<const int32_t>();
  int32_t maxPosition = 0;
  for (int64_t s = 0; s < tokens; ++s)
    maxPosition = std::max(maxPosition, pos[s]);
  const bool longRegime = ropeLongRegime(cfg, maxPosition);
  float *invFreq = scratch(rank).floats(slotRopeTable, half);
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = ropeInvFreq(cfg, i, rotaryDim, longRegime);
  const float factor = ropeCosSinScale(cfg, longRegime);
  std::vector<float> row(rotaryDim), cosines(half), sines(half);
  for (int64_t s = 0; s < tokens; ++s) {
    require(pos[s] >= 0, "token ", s, " has position ", pos[s]);
    for (int64_t i = 0; i < half; ++i) {
      // fp32 product, as transformers forms position * inv_freq.
      float angle = static_cast<float>(pos[s]) * invFreq[i];
      cosines[i] = std::cos(angle) * factor;
      sines[i] = std::sin(angle) * factor;
    }
    for (int64_t h = 0; h < heads; ++h) {
      Operand head = x.at((s * heads + h) * headDim);
      convertToFloat(head.data, head.dtype, row.data(), rotaryDim);
      for (int64_t i = 0; i < half; ++i) {
        int64_t a, b;
        ropePair(cfg, i, rotaryDim, a, b);
        float x1 = row[a], x2 = row[b];
        row[a] = x1 * cosines[i] - x2 * sines[i];
        row[b] = x2 * cosines[i] + x1 * sines[i];
      }
      convertFromFloat(row.data(), head.data, head.dtype, rotaryDim);
    }
  }
}

void CpuBackend::kvAppend(int32_t rank, Operand k, Operand v, Operand cache,
                          Operand sequences, Operand positions, int64_t tokens,
                          const KvCacheShape &shape) {
  int64_t row = shape.kvHeads * shape.headDim;
  for (int64_t s = 0; s < tokens; ++s) {
    auto [b, p] = cacheSlot(sequences, positions, s, shape);
    int64_t at = shape.at(b, p, 0);
    convert(k.at(s * row).data, k.dtype, cache.at(at).data, cache.dtype, row);
    convert(v.at(s * row).data, v.dtype, cache.at(shape.half() + at).data,
            cache.dtype, row);
  }
}

void CpuBackend::attention(int32_t rank, Operand q, Operand cache,
                           Operand sequences, Operand positions, Operand sinks,
                           Operand out, int64_t tokens, int64_t heads,
                           const KvCacheShape &shape, float scale,
                           int64_t window) {
  const int64_t dim = shape.headDim, kvHeads = shape.kvHeads,
                group = heads / kvHeads;
  for (int64_t s = 0; s < tokens; ++s) // checked once, before the threads
    cacheSlot(sequences, positions, s, shape);
  const float *sinkLogits =
      sinks.present()
          ? floatInput(scratch(rank), slotAttentionSinks, sinks, heads)
          : nullptr;
  ThreadPool &pool = gemm(rank).pool;
  const AttentionRows &rows = attentionRows();
  const int32_t *sequence = sequences.as<const int32_t>(),
                *position = positions.as<const int32_t>();
  const std::vector<TokenBlock> blocks =
      tokenBlocks(sequence, position, tokens);
  // One work item per (token block, kv head): the block's tokens and the
  // query heads that share the kv head read the same cached rows in turn
  // (the keys from a panel, the values in place in the cache's dtype) while
  // they are in this core's caches.
  // Per thread: one token's query rows, scores, weights and output rows.
  std::vector<std::vector<float>> buffers(pool.size());
  pool.parallelFor(blocks.size() * kvHeads, [&](int64_t item, int thread) {
    const TokenBlock &block = blocks[item / kvHeads];
    int64_t kvHead = item % kvHeads;
    int64_t b = sequence[block.first];
    // The sliding window: a token and the window - 1 positions before it.
    auto firstKey = [&](int64_t last) {
      return window > 0 ? std::max<int64_t>(0, last - window + 1) : 0;
    };
    // The block's last token attends to the most positions; its first
    // token's window starts first.
    int64_t lastPosition = position[block.first + block.count - 1];
    int64_t most = lastPosition + 1 - firstKey(lastPosition);
    int64_t panelFirst = firstKey(position[block.first]);
    int64_t panelKeys = lastPosition + 1 - panelFirst;
    int64_t width = (panelKeys + 15) / 16 * 16;
    // Many queries over a few thousand keys: the keys widened once into a
    // panel (at most 1 MiB) whose scores need no reduction per key.
    bool panel = block.count * group >= 8 && dim * width <= (1 << 18);
    std::vector<float> &buf = buffers[thread];
    buf.resize(group * (2 * dim + most + 2) + most +
               (panel ? dim * width + 16 : 0));
    float *queries = buf.data(), *acc = queries + group * dim,
          *scores = acc + group * dim, *top = scores + group * most,
          *sum = top + group, *weights = sum + group,
          *keyPanel = weights + most;
    // Positions of one kv head are kvHeads * dim elements apart.
    if (panel) {
      rows.transpose(cache.at(shape.at(b, panelFirst, kvHead)).data,
                     cache.dtype, kvHeads * dim, dim, panelKeys, width,
                     keyPanel);
      std::fill(keyPanel + dim * width, keyPanel + dim * width + 16, 0.0f);
    }
    for (int64_t s = block.first; s < block.first + block.count; ++s) {
      int64_t first = firstKey(position[s]);
      int64_t length = position[s] + 1 - first;
      const void *keys = cache.at(shape.at(b, first, kvHead)).data;
      const void *values =
          cache.at(shape.half() + shape.at(b, first, kvHead)).data;
      int64_t firstHead = s * heads + kvHead * group;
      convertToFloat(q.at(firstHead * dim).data, q.dtype, queries,
                     group * dim);
      for (int64_t g = 0; g < group; ++g) {
        float *row = scores + g * length;
        if (panel)
          rows.panelScores(queries + g * dim, keyPanel + (first - panelFirst),
                           width, dim, length, scale, row);
        else
          rows.scores(queries + g * dim, keys, cache.dtype, kvHeads * dim, dim,
                      length, scale, row);
        // A sink is one more logit in the maximum and the denominator.
        top[g] = sinkLogits ? sinkLogits[kvHead * group + g] : -INFINITY;
        for (int64_t t = 0; t < length; ++t)
          top[g] = std::max(top[g], row[t]);
        float total = rows.softmaxTerms(row, length, top[g]);
        if (sinkLogits)
          total += std::exp(sinkLogits[kvHead * group + g] - top[g]);
        sum[g] = total;
      }
      std::fill(acc, acc + group * dim, 0.0f);
      for (int64_t g = 0; g < group; ++g) {
        for (int64_t t = 0; t < length; ++t)
          weights[t] = scores[g * length + t] / sum[g];
        rows.weightedSum(acc + g * dim, weights, values, cache.dtype,
                         kvHeads * dim, dim, length);
      }
      convertFromFloat(acc, out.at(firstHead * dim).data, out.dtype,
                       group * dim);
    }
  });
}

void CpuBackend::argmax(int32_t rank, Operand logits, Operand ids,
                        int64_t tokens, int64_t vocab) {
  const float *rows = logits.as<const float>();
  int32_t *out = ids.as<int32_t>();
  for (int64_t s = 0; s < tokens; ++s) {
    const float *row = rows + s * vocab;
    int64_t best = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      require(!std::isnan(row[i]), "token ", s, ": logit ", i, " is NaN");
      if (row[i] > row[best]) // strict: the lower index keeps a tie
        best = i;
    }
    out[s] = static_cast<int32_t>(best);
  }
}
