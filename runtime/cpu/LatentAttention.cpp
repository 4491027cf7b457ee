//===- runtime/cpu/LatentAttention.cpp - DeepSeek MLA kernels -------------===//
//
// moert_latent_append and moert_latent_attention (semantics: runtime/moert.h)
// on the CPU: the append one token at a time, the absorbed attention one
// (token, head) per work item on the rank's threads, fp32 throughout with
// outputs rounded once to their dtype.
//
//===----------------------------------------------------------------------===//
#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/common/Rope.h"
#include "runtime/cpu/Backend.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace moert;
using namespace moert::cpu;

namespace {

// The (sequence, position) of token s, checked against the cache.
std::pair<int64_t, int64_t> latentSlot(const Operand &sequences,
                                       const Operand &positions, int64_t s,
                                       const LatentCacheShape &shape) {
  int64_t b = sequences.as<const int32_t>()[s];
  int64_t p = positions.as<const int32_t>()[s];
  require(b >= 0 && b < shape.maxBatch && p >= 0 && p < shape.maxSeq, "token ",
          s, " has sequence ", b, " position ", p,
          " outside the latent cache [", shape.maxBatch, " sequences x ",
          shape.maxSeq, " positions]");
  return {b, p};
}

// Rotates x[ropeDim] in place at `position` (neighbouring pairs).
void rotatePairs(const moert_rope_config_t &cfg, const float *invFreq, float *x,
                 int64_t ropeDim, int32_t position) {
  const float factor = static_cast<float>(cfg.attention_factor);
  for (int64_t i = 0; i < ropeDim / 2; ++i) {
    // fp32 product, as transformers forms position * inv_freq.
    float angle = static_cast<float>(position) * invFreq[i];
    ropeInterleavedPair(x[2 * i], x[2 * i + 1], std::cos(angle) * factor,
                        std::sin(angle) * factor);
  }
}

std::vector<float> inverseFrequencies(const moert_rope_config_t &cfg,
                                      int64_t ropeDim) {
  std::vector<float> invFreq(ropeDim / 2);
  for (int64_t i = 0; i < ropeDim / 2; ++i)
    invFreq[i] = ropeInvFreq(cfg, i, ropeDim);
  return invFreq;
}

} // namespace

void CpuBackend::latentAppend(int32_t rank, const moert_rope_config_t &cfg,
                              Operand kv, Operand norm, Operand cache,
                              Operand sequences, Operand positions,
                              int64_t tokens, const LatentCacheShape &shape,
                              float epsilon) {
  const int64_t r = shape.rank, row = shape.row();
  std::vector<float> invFreq = inverseFrequencies(cfg, shape.ropeDim);
  std::vector<float> values(row), weight(r);
  std::vector<char> narrow(r * dtypeSize(kv.dtype));
  convertToFloat(norm.data, norm.dtype, weight.data(), r);
  for (int64_t s = 0; s < tokens; ++s) {
    auto [b, p] = latentSlot(sequences, positions, s, shape);
    convertToFloat(kv.at(s * row).data, kv.dtype, values.data(), row);
    double squares = 0; // as moert_rms_norm
    for (int64_t i = 0; i < r; ++i)
      squares += static_cast<double>(values[i]) * values[i];
    float inverse = 1.0f / std::sqrt(static_cast<float>(squares / r) + epsilon);
    // The normalised latent is rounded to kv's dtype before the weight
    // multiplies it (moert_rms_norm, the Hugging Face RMSNorm).
    for (int64_t i = 0; i < r; ++i)
      values[i] *= inverse;
    if (kv.dtype != MOERT_F32) {
      convertFromFloat(values.data(), narrow.data(), kv.dtype, r);
      convertToFloat(narrow.data(), kv.dtype, values.data(), r);
    }
    for (int64_t i = 0; i < r; ++i)
      values[i] *= weight[i];
    rotatePairs(cfg, invFreq.data(), values.data() + r, shape.ropeDim,
                static_cast<int32_t>(p));
    convertFromFloat(values.data(), cache.at(shape.at(b, p)).data, cache.dtype,
                     row);
  }
}

void CpuBackend::latentAttention(int32_t rank, const moert_rope_config_t &cfg,
                                 Operand q, Operand kvB, Operand cache,
                                 Operand sequences, Operand positions,
                                 Operand out, int64_t tokens,
                                 const LatentHeads &heads,
                                 const LatentCacheShape &shape, float scale) {
  const int64_t r = shape.rank, dr = shape.ropeDim, dn = heads.nopeDim,
                dv = heads.vDim, qRow = dn + dr, row = shape.row();
  for (int64_t s = 0; s < tokens; ++s) // checked once, before the threads
    latentSlot(sequences, positions, s, shape);
  std::vector<float> invFreq = inverseFrequencies(cfg, dr);
  ThreadPool &pool = gemm(rank).pool;
  // Per thread: the query, q_lat, one cache row, the latent output, the
  // output row and the scores; and the head whose kv_b block it holds in
  // fp32 (items are head-major, so a thread's next item is mostly the same
  // head and the block is widened once per run, not per token).
  struct ThreadState {
    std::vector<float> buf, wkv;
    int64_t head = -1;
  };
  std::vector<ThreadState> states(pool.size());
  const int64_t block = (dn + dv) * r;
  pool.parallelFor(tokens * heads.heads, [&](int64_t item, int thread) {
    int64_t h = item / tokens, s = item % tokens;
    int64_t b = sequences.as<const int32_t>()[s];
    int32_t position = positions.as<const int32_t>()[s];
    int64_t length = int64_t(position) + 1;
    ThreadState &state = states[thread];
    std::vector<float> &buf = state.buf;
    buf.resize(qRow + r + row + r + dv + length);
    float *query = buf.data(), *qLat = query + qRow, *entry = qLat + r,
          *oLat = entry + row, *o = oLat + r, *scores = o + dv;
    int64_t rowItem = s * heads.heads + h; // q and out are token-major
    convertToFloat(q.at(rowItem * qRow).data, q.dtype, query, qRow);
    rotatePairs(cfg, invFreq.data(), query + dn, dr, position);
    const float *wkv;
    if (kvB.dtype == MOERT_F32) {
      wkv = kvB.at(h * block).as<const float>();
    } else {
      if (state.head != h) {
        state.wkv.resize(block);
        convertToFloat(kvB.at(h * block).data, kvB.dtype, state.wkv.data(),
                       block);
        state.head = h;
      }
      wkv = state.wkv.data();
    }
    // Absorb W_UK into the query: q_lat = W_UK[h]^T q_nope.
    std::fill(qLat, qLat + r, 0.0f);
    for (int64_t n = 0; n < dn; ++n)
      for (int64_t j = 0; j < r; ++j)
        qLat[j] += query[n] * wkv[n * r + j];
    float top = -INFINITY;
    for (int64_t t = 0; t < length; ++t) {
      convertToFloat(cache.at(shape.at(b, t)).data, cache.dtype, entry, row);
      float dot = 0.0f;
      for (int64_t j = 0; j < r; ++j)
        dot += qLat[j] * entry[j];
      for (int64_t d = 0; d < dr; ++d)
        dot += query[dn + d] * entry[r + d];
      scores[t] = dot * scale;
      top = std::max(top, scores[t]);
    }
    float sum = 0.0f;
    for (int64_t t = 0; t < length; ++t)
      sum += scores[t] = std::exp(scores[t] - top);
    std::fill(oLat, oLat + r, 0.0f);
    for (int64_t t = 0; t < length; ++t) {
      convertToFloat(cache.at(shape.at(b, t)).data, cache.dtype, entry, r);
      float p = scores[t] / sum;
      for (int64_t j = 0; j < r; ++j)
        oLat[j] += p * entry[j];
    }
    // W_UV after the attention, on the latent.
    const float *wuv = wkv + dn * r;
    for (int64_t v = 0; v < dv; ++v) {
      float acc = 0.0f;
      for (int64_t j = 0; j < r; ++j)
        acc += wuv[v * r + j] * oLat[j];
      o[v] = acc;
    }
    convertFromFloat(o, out.at(rowItem * dv).data, out.dtype, dv);
  });
}
