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
#include "runtime/cpu/Backend.h"
#include "runtime/cpu/gemm/Isa.h"

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

// The f32 row at `row`: in place, or widened into `scratch`.
const float *rowAsFloat(const Operand &row, float *scratch, int64_t count) {
  if (row.dtype == MOERT_F32)
    return row.as<const float>();
  convertToFloat(row.data, row.dtype, scratch, count);
  return scratch;
}

// The attention's row loops: sum a[d] * b[d] in 16 independent lanes (no
// serial chain), and o[d] += p * v[d]. Written once, compiled for baseline
// x86-64 / any CPU and, on x86-64, for AVX-512 (chosen with gemm::isa()).
#define MOERT_ATTENTION_ROWS(Suffix, Target)                                   \
  Target float dotProduct##Suffix(const float *a, const float *b,              \
                                  int64_t count) {                             \
    constexpr int64_t kLanes = 16;                                             \
    float lanes[kLanes] = {};                                                  \
    int64_t d = 0;                                                             \
    for (; d + kLanes <= count; d += kLanes)                                   \
      for (int64_t j = 0; j < kLanes; ++j)                                     \
        lanes[j] += a[d + j] * b[d + j];                                       \
    float sum = 0.0f;                                                          \
    for (int64_t j = 0; j < kLanes; ++j)                                       \
      sum += lanes[j];                                                         \
    for (; d < count; ++d)                                                     \
      sum += a[d] * b[d];                                                      \
    return sum;                                                                \
  }                                                                            \
  Target void addScaled##Suffix(float *o, float p, const float *v,             \
                                int64_t count) {                               \
    for (int64_t d = 0; d < count; ++d)                                        \
      o[d] += p * v[d];                                                        \
  }

MOERT_ATTENTION_ROWS(Generic, )
#if defined(__x86_64__)
MOERT_ATTENTION_ROWS(Avx512,
                     __attribute__((target("avx512f,avx512vl,fma"))))
#endif
#undef MOERT_ATTENTION_ROWS

struct AttentionRows {
  float (*dot)(const float *, const float *, int64_t);
  void (*addScaled)(float *, float, const float *, int64_t);
};

AttentionRows attentionRows() {
#if defined(__x86_64__)
  if (gemm::isa() >= gemm::Isa::Avx512)
    return {dotProductAvx512, addScaledAvx512};
#endif
  return {dotProductGeneric, addScaledGeneric};
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
  const int32_t *pos = positions.as<const int32_t>();
  int32_t maxPosition = 0;
  for (int64_t s = 0; s < tokens; ++s)
    maxPosition = std::max(maxPosition, pos[s]);
  const bool longRegime = ropeLongRegime(cfg, maxPosition);
  float *invFreq = scratch(rank).floats(slotRopeTable, half);
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = ropeInvFreq(cfg, i, headDim, longRegime);
  const float factor = ropeCosSinScale(cfg, longRegime);
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
  const AttentionRows rows = attentionRows();
  // One work item per (token, kv head): the query heads that share the kv
  // head read each cached key and value row once. Per thread: their query
  // rows, scores and output rows, one widened key/value row.
  std::vector<std::vector<float>> buffers(pool.size());
  pool.parallelFor(tokens * kvHeads, [&](int64_t item, int thread) {
    int64_t s = item / kvHeads, kvHead = item % kvHeads;
    int64_t b = sequences.as<const int32_t>()[s];
    int64_t last = positions.as<const int32_t>()[s];
    // The sliding window: the token and the window - 1 positions before it.
    int64_t first = window > 0 ? std::max<int64_t>(0, last - window + 1) : 0;
    int64_t length = last + 1 - first;
    std::vector<float> &buf = buffers[thread];
    buf.resize(group * (2 * dim + length + 2) + dim);
    float *queries = buf.data(), *acc = queries + group * dim,
          *scores = acc + group * dim, *top = scores + group * length,
          *sum = top + group, *widened = sum + group;
    int64_t firstHead = s * heads + kvHead * group;
    convertToFloat(q.at(firstHead * dim).data, q.dtype, queries, group * dim);
    // A sink is one more logit in the maximum and the denominator.
    for (int64_t g = 0; g < group; ++g)
      top[g] = sinkLogits ? sinkLogits[kvHead * group + g] : -INFINITY;
    for (int64_t t = 0; t < length; ++t) {
      const float *key =
          rowAsFloat(cache.at(shape.at(b, first + t, kvHead)), widened, dim);
      for (int64_t g = 0; g < group; ++g) {
        float score = rows.dot(queries + g * dim, key, dim) * scale;
        scores[g * length + t] = score;
        top[g] = std::max(top[g], score);
      }
    }
    for (int64_t g = 0; g < group; ++g) {
      float *row = scores + g * length, total = 0.0f;
      for (int64_t t = 0; t < length; ++t)
        total += row[t] = std::exp(row[t] - top[g]);
      if (sinkLogits)
        total += std::exp(sinkLogits[kvHead * group + g] - top[g]);
      sum[g] = total;
    }
    std::fill(acc, acc + group * dim, 0.0f);
    for (int64_t t = 0; t < length; ++t) {
      const float *value =
          rowAsFloat(cache.at(shape.half() + shape.at(b, first + t, kvHead)),
                     widened, dim);
      for (int64_t g = 0; g < group; ++g) {
        rows.addScaled(acc + g * dim, scores[g * length + t] / sum[g], value,
                       dim);
      }
    }
    convertFromFloat(acc, out.at(firstHead * dim).data, out.dtype,
                     group * dim);
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
