//===- runtime/cpu/LatentAttention.cpp - DeepSeek MLA kernels -------------===//
//
// moert_latent_append and moert_latent_attention (semantics: runtime/moert.h)
// on the CPU: the append one token at a time; the attention per sequence
// either absorbed, one (token, head) per work item, or naive, the cached
// positions expanded once through kv_b by the GEMM kernels and then ordinary
// attention, whichever does less work (naiveDoesLessWork); fp32 throughout
// with outputs rounded once to their dtype.
//
//===----------------------------------------------------------------------===//
#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/common/Rope.h"
#include "runtime/cpu/AttentionRows.h"
#include "runtime/cpu/Backend.h"
#include "runtime/cpu/gemm/Kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
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

namespace {

// Which form computes a sequence's queries. MOERT_CPU_LATENT_FORM=absorbed
// or naive forces one (the tests run both on the same inputs); unset, the
// work estimate below picks.
enum class LatentForm { ByWork, Absorbed, Naive };

LatentForm requestedForm() {
  const char *text = std::getenv("MOERT_CPU_LATENT_FORM");
  if (!text || !*text)
    return LatentForm::ByWork;
  if (std::strcmp(text, "absorbed") == 0)
    return LatentForm::Absorbed;
  if (std::strcmp(text, "naive") == 0)
    return LatentForm::Naive;
  require(false, "MOERT_CPU_LATENT_FORM must be 'absorbed' or 'naive', got '",
          text, "'");
  return LatentForm::ByWork;
}

// The one place the form is chosen: multiply-adds per head (the head count
// cancels) for one sequence's queries. Absorbed: per query W_UK^T q_nope
// and W_UV o_lat, (nope + v) * rank, and per (query, cached position) pair
// the score and the weighted sum over the latent, 2 * rank + rope. Naive:
// per cached position its expansion through kv_b, (nope + v) * rank, and
// per pair nope + rope + v. A prompt (queries ~ positions) does less work
// naively; decode (one query over many positions) in the absorbed form.
bool naiveDoesLessWork(int64_t queries, int64_t pairs, int64_t positions,
                       const LatentHeads &heads,
                       const LatentCacheShape &shape) {
  double expansion = double(heads.nopeDim + heads.vDim) * shape.rank;
  double absorbed =
      queries * expansion + pairs * double(2 * shape.rank + shape.ropeDim);
  double naive = positions * expansion +
                 pairs * double(heads.nopeDim + shape.ropeDim + heads.vDim);
  return naive < absorbed;
}

// The tokens of one sequence in a call, and the cached positions
// [0, positions) they attend to together.
struct SequenceQueries {
  int64_t sequence;
  std::vector<int64_t> tokens;
  int64_t positions = 0, pairs = 0;
};

std::vector<SequenceQueries> querySequences(const Operand &sequences,
                                            const Operand &positions,
                                            int64_t tokens) {
  std::vector<SequenceQueries> groups;
  std::map<int64_t, size_t> index;
  for (int64_t s = 0; s < tokens; ++s) {
    int64_t b = sequences.as<const int32_t>()[s];
    int64_t length = int64_t(positions.as<const int32_t>()[s]) + 1;
    auto [at, added] = index.emplace(b, groups.size());
    if (added)
      groups.push_back({b, {}});
    SequenceQueries &group = groups[at->second];
    group.tokens.push_back(s);
    group.positions = std::max(group.positions, length);
    group.pairs += length;
  }
  return groups;
}

// Everything a latent attention call reads, shared by both forms.
struct LatentCall {
  const moert_rope_config_t &cfg;
  const std::vector<float> &invFreq;
  Operand q, kvB, cache, sequences, positions, out;
  const LatentHeads &heads;
  const LatentCacheShape &shape;
  float scale;
};

// The absorbed form for `tokens`, one (token, head) per work item.
void absorbedAttention(ThreadPool &pool, const LatentCall &call,
                       const std::vector<int64_t> &tokens) {
  const int64_t r = call.shape.rank, dr = call.shape.ropeDim,
                dn = call.heads.nopeDim, dv = call.heads.vDim, qRow = dn + dr,
                row = call.shape.row(), count = tokens.size();
  const Operand &q = call.q, &kvB = call.kvB, &cache = call.cache,
                &out = call.out;
  // Per thread: the query, the absorbed query, the latent output, the
  // output row and the scores. kv_b and the cache are read in place.
  std::vector<std::vector<float>> buffers(pool.size());
  const int64_t block = (dn + dv) * r;
  const size_t kvBElement = dtypeSize(kvB.dtype);
  const AttentionRows &rows = attentionRows();
  pool.parallelFor(count * call.heads.heads, [&](int64_t item, int thread) {
    int64_t h = item / count, s = tokens[item % count];
    int64_t b = call.sequences.as<const int32_t>()[s];
    int32_t position = call.positions.as<const int32_t>()[s];
    int64_t length = int64_t(position) + 1;
    std::vector<float> &buf = buffers[thread];
    buf.resize(qRow + row + r + dv + length);
    // qAbsorbed: q_lat then the rotated q_pe, against a whole cache row.
    float *query = buf.data(), *qAbsorbed = query + qRow,
          *oLat = qAbsorbed + row, *o = oLat + r, *scores = o + dv;
    int64_t rowItem = s * call.heads.heads + h; // q and out are token-major
    convertToFloat(q.at(rowItem * qRow).data, q.dtype, query, qRow);
    rotatePairs(call.cfg, call.invFreq.data(), query + dn, dr, position);
    // Head h's kv_b block: W_UK rows [0, dn), then W_UV rows.
    const char *wuk = static_cast<const char *>(kvB.at(h * block).data);
    const char *wuv = wuk + dn * r * kvBElement;
    // Absorb W_UK into the query: q_lat = W_UK[h]^T q_nope.
    std::fill(qAbsorbed, qAbsorbed + r, 0.0f);
    rows.weightedSum(qAbsorbed, query, wuk, kvB.dtype, r, r, dn);
    std::copy(query + dn, query + qRow, qAbsorbed + r);
    const void *cached = cache.at(call.shape.at(b, 0)).data;
    rows.scores(qAbsorbed, cached, cache.dtype, row, row, length, call.scale,
                scores);
    float top = -INFINITY;
    for (int64_t t = 0; t < length; ++t)
      top = std::max(top, scores[t]);
    float sum = rows.softmaxTerms(scores, length, top);
    for (int64_t t = 0; t < length; ++t)
      scores[t] /= sum;
    std::fill(oLat, oLat + r, 0.0f);
    rows.weightedSum(oLat, scores, cached, cache.dtype, row, r, length);
    // W_UV after the attention, on the latent.
    rows.scores(oLat, wuv, kvB.dtype, r, r, dv, 1.0f, o);
    convertFromFloat(o, out.at(rowItem * dv).data, out.dtype, dv);
  });
}

// Receives the expansion c_t . kv_b[heads h0...]^T of positions t (the
// GEMM's rows) and stores, per head of the group, k_nope transposed
// [nope][positions] (the scores then run along positions, independent
// lanes) and v [positions][v_dim].
class ExpansionSink final : public gemm::Sink {
public:
  ExpansionSink(float *keysT, float *values, int64_t positions, int64_t nope,
                int64_t vDim)
      : keysT_(keysT), values_(values), positions_(positions), nope_(nope),
        vDim_(vDim) {}
  void store(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
             const float *first, const float *, int64_t ld) override {
    const int64_t width = nope_ + vDim_;
    for (int64_t c = 0; c < cols; ++c) {
      int64_t head = (n0 + c) / width, i = (n0 + c) % width;
      const float *from = first + c;
      if (i < nope_) {
        float *to = keysT_ + (head * nope_ + i) * positions_ + m0;
        for (int64_t t = 0; t < rows; ++t)
          to[t] = from[t * ld];
      } else {
        float *to = values_ + (head * positions_ + m0) * vDim_ + (i - nope_);
        for (int64_t t = 0; t < rows; ++t)
          to[t * vDim_] = from[t * ld];
      }
    }
  }

private:
  float *keysT_, *values_;
  int64_t positions_, nope_, vDim_;
};

// fp32 values the expansion of one head group may hold (keys and values):
// 32 MiB, so long prompts of many heads go a few heads at a time.
constexpr int64_t expansionBudget = int64_t(1) << 23;
// Positions packed per parallel task.
constexpr int64_t packPositions = 64;

enum LatentSlot : size_t {
  slotKeysT = 40,
  slotValues = 41,
  slotRopeKeysT = 42
};

// The naive form for one sequence's queries: its cached positions expanded
// once through kv_b into per-head keys and values (the GEMM kernels of
// gemm/Kernels.h, the latent packed straight from the cache rows, fp32
// sums), then causal softmax attention per (head, query) with the shared
// rotated key.
void naiveAttention(GemmContext &context, Scratch &scratch,
                    const LatentCall &call, const SequenceQueries &queries) {
  const int64_t r = call.shape.rank, dr = call.shape.ropeDim,
                dn = call.heads.nopeDim, dv = call.heads.vDim, qRow = dn + dr,
                H = call.heads.heads, L = queries.positions,
                count = queries.tokens.size();
  ThreadPool &pool = context.pool;
  const Operand &cache = call.cache;
  const char *firstRow = static_cast<const char *>(
      cache.at(call.shape.at(queries.sequence, 0)).data);

  const gemm::KernelSet &kernels = gemm::kernelsFor(call.kvB.dtype, L);
  bool split = cache.dtype != MOERT_BF16; // as GroupedGemm's inputs
  gemm::PackedRows latent{
      context.packedInput.get(kernels.packedBytes(L, r, split)), L, r, split};
  kernels.clearPadding(latent);
  size_t rowBytes = call.shape.row() * dtypeSize(cache.dtype);
  pool.parallelFor(
      (L + packPositions - 1) / packPositions, [&](int64_t task, int) {
        int64_t t0 = task * packPositions;
        kernels.pack(firstRow + t0 * rowBytes, cache.dtype, call.shape.row(),
                     t0, std::min(packPositions, L - t0), 0, r, latent);
      });
  // k_pe transposed [rope][positions], shared by every head.
  float *ropeKeysT = scratch.floats(slotRopeKeysT, dr * L);
  std::vector<float> entry(dr);
  for (int64_t t = 0; t < L; ++t) {
    convertToFloat(firstRow + t * rowBytes + r * dtypeSize(cache.dtype),
                   cache.dtype, entry.data(), dr);
    for (int64_t d = 0; d < dr; ++d)
      ropeKeysT[d * L + t] = entry[d];
  }

  const int64_t groupHeads =
      std::clamp<int64_t>(expansionBudget / (L * (dn + dv)), 1, H);
  float *keysT = scratch.floats(slotKeysT, groupHeads * dn * L);
  float *values = scratch.floats(slotValues, groupHeads * L * dv);
  // Per thread: the query, the scores and the output row.
  std::vector<std::vector<float>> buffers(pool.size());
  const AttentionRows &rows = attentionRows();
  for (int64_t h0 = 0; h0 < H; h0 += groupHeads) {
    const int64_t group = std::min(groupHeads, H - h0);
    gemm::Weights weights{call.kvB.at(h0 * (dn + dv) * r).data, nullptr,
                          call.kvB.dtype, group * (dn + dv), r};
    ExpansionSink sink(keysT, values, L, dn, dv);
    pool.parallelFor(weights.items(), [&](int64_t item, int thread) {
      kernels.run(weights, item, latent, pool.workspace(thread), sink);
    });
    pool.parallelFor(group * count, [&](int64_t item, int thread) {
      int64_t h = h0 + item / count, s = queries.tokens[item % count];
      int32_t position = call.positions.as<const int32_t>()[s];
      int64_t length = int64_t(position) + 1;
      std::vector<float> &buf = buffers[thread];
      buf.resize(qRow + L + dv);
      float *query = buf.data(), *scores = query + qRow, *o = scores + L;
      int64_t rowItem = s * H + h; // q and out are token-major
      convertToFloat(call.q.at(rowItem * qRow).data, call.q.dtype, query, qRow);
      rotatePairs(call.cfg, call.invFreq.data(), query + dn, dr, position);
      // The keys are transposed: scores[t] += query[n] * keysT[n][t].
      std::fill(scores, scores + length, 0.0f);
      rows.weightedSum(scores, query, keysT + (h - h0) * dn * L, MOERT_F32, L,
                       length, dn);
      rows.weightedSum(scores, query + dn, ropeKeysT, MOERT_F32, L, length,
                       dr);
      float top = -INFINITY;
      for (int64_t t = 0; t < length; ++t) {
        scores[t] *= call.scale;
        top = std::max(top, scores[t]);
      }
      float sum = rows.softmaxTerms(scores, length, top);
      for (int64_t t = 0; t < length; ++t)
        scores[t] /= sum;
      std::fill(o, o + dv, 0.0f);
      rows.weightedSum(o, scores, values + (h - h0) * L * dv, MOERT_F32, dv,
                       dv, length);
      convertFromFloat(o, call.out.at(rowItem * dv).data, call.out.dtype, dv);
    });
  }
}

} // namespace

void CpuBackend::latentAttention(int32_t rank, const moert_rope_config_t &cfg,
                                 Operand q, Operand kvB, Operand cache,
                                 Operand sequences, Operand positions,
                                 Operand out, int64_t tokens,
                                 const LatentHeads &heads,
                                 const LatentCacheShape &shape, float scale) {
  for (int64_t s = 0; s < tokens; ++s) // checked once, before the threads
    latentSlot(sequences, positions, s, shape);
  LatentForm form = requestedForm();
  std::vector<float> invFreq = inverseFrequencies(cfg, shape.ropeDim);
  LatentCall call{cfg,       invFreq, q,     kvB,   cache, sequences,
                  positions, out,     heads, shape, scale};
  std::vector<int64_t> absorbed;
  for (const SequenceQueries &queries :
       querySequences(sequences, positions, tokens)) {
    bool naive = form == LatentForm::Naive ||
                 (form == LatentForm::ByWork &&
                  naiveDoesLessWork(queries.tokens.size(), queries.pairs,
                                    queries.positions, heads, shape));
    if (naive)
      naiveAttention(gemm(rank), scratch(rank), call, queries);
    else
      absorbed.insert(absorbed.end(), queries.tokens.begin(),
                      queries.tokens.end());
  }
  if (!absorbed.empty())
    absorbedAttention(gemm(rank).pool, call, absorbed);
}
