//===- runtime/cpu/Decoder.cpp - Linear, embedding, RoPE, attention
//--------===//
//
// The decoder's kernels: GEMMs through the grouped GEMM (GroupedGemm.h),
// attention one (token, head) per work item on the rank's threads, fp32
// throughout with outputs rounded once to their dtype.
//
//===----------------------------------------------------------------------===//
#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/common/Rope.h"
#include "runtime/cpu/Backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

using namespace moert;
using namespace moert::cpu;

namespace {

// Scratch slots past those of Kernels.cpp.
enum DecoderSlot : size_t { slotLinearBias = 32, slotRopeTable = 33 };

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
  int64_t half = headDim / 2;
  float *invFreq = scratch(rank).floats(slotRopeTable, half);
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = ropeInvFreq(cfg, i, headDim);
  const float factor = static_cast<float>(cfg.attention_factor);
  const int32_t *pos = positions.as<const int32_t>();
  std::vector<float> row(headDim), cosines(half), sines(half);
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
      convertToFloat(head.data, head.dtype, row.data(), headDim);
      for (int64_t i = 0; i < half; ++i) {
        float x1 = row[i], x2 = row[i + half];
        row[i] = x1 * cosines[i] - x2 * sines[i];
        row[i + half] = x2 * cosines[i] + x1 * sines[i];
      }
      convertFromFloat(row.data(), head.data, head.dtype, headDim);
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
                           Operand sequences, Operand positions, Operand out,
                           int64_t tokens, int64_t heads,
                           const KvCacheShape &shape, float scale) {
  const int64_t dim = shape.headDim, group = heads / shape.kvHeads;
  for (int64_t s = 0; s < tokens; ++s) // checked once, before the threads
    cacheSlot(sequences, positions, s, shape);
  ThreadPool &pool = gemm(rank).pool;
  // Per thread: q row, one key/value row, scores and the output row.
  std::vector<std::vector<float>> buffers(pool.size());
  pool.parallelFor(tokens * heads, [&](int64_t item, int thread) {
    int64_t s = item / heads, h = item % heads, kvHead = h / group;
    int64_t b = sequences.as<const int32_t>()[s];
    int64_t length = positions.as<const int32_t>()[s] + 1;
    std::vector<float> &buf = buffers[thread];
    buf.resize(3 * dim + length);
    float *query = buf.data(), *kv = query + dim, *acc = kv + dim,
          *scores = acc + dim;
    convertToFloat(q.at(item * dim).data, q.dtype, query, dim);
    float top = -INFINITY;
    for (int64_t t = 0; t < length; ++t) {
      convertToFloat(cache.at(shape.at(b, t, kvHead)).data, cache.dtype, kv,
                     dim);
      float dot = 0.0f;
      for (int64_t d = 0; d < dim; ++d)
        dot += query[d] * kv[d];
      scores[t] = dot * scale;
      top = std::max(top, scores[t]);
    }
    float sum = 0.0f;
    for (int64_t t = 0; t < length; ++t)
      sum += scores[t] = std::exp(scores[t] - top);
    std::fill(acc, acc + dim, 0.0f);
    for (int64_t t = 0; t < length; ++t) {
      convertToFloat(cache.at(shape.half() + shape.at(b, t, kvHead)).data,
                     cache.dtype, kv, dim);
      float p = scores[t] / sum;
      for (int64_t d = 0; d < dim; ++d)
        acc[d] += p * kv[d];
    }
    convertFromFloat(acc, out.at(item * dim).data, out.dtype, dim);
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
