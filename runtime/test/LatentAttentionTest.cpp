//===- runtime/test/LatentAttentionTest.cpp - DeepSeek MLA calls ----------===//
//
// Oracle: the naive form of multi-head latent attention in double precision,
// written from runtime/moert.h: per-head keys [W_UK c_t, k_pe_t] and values
// W_UV c_t materialised, then causal softmax attention; the calls compute
// the absorbed form, which must agree. The rope is DeepSeek's pairwise one
// with inv_freq = theta^(-2i/d) spelled out here.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <algorithm>
#include <cstdlib>
#include <random>

using namespace moert;
using namespace moert::test;

namespace {

using Floats = std::vector<float>;
using Ints = std::vector<int32_t>;

moert_rope_config_t defaultRope(double attentionFactor) {
  moert_rope_config_t cfg{};
  cfg.type = MOERT_ROPE_DEFAULT;
  cfg.theta = 10000.0;
  cfg.factor = 1.0;
  cfg.attention_factor = attentionFactor;
  return cfg;
}

// x[d] rotated pairwise at `position`.
std::vector<double> rotatePairs(std::vector<double> x, int32_t position,
                                double theta, double factor) {
  int64_t d = x.size();
  for (int64_t i = 0; i < d / 2; ++i) {
    double angle = position * std::pow(theta, -2.0 * i / d);
    double c = std::cos(angle) * factor, s = std::sin(angle) * factor;
    double a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c - b * s;
    x[2 * i + 1] = b * c + a * s;
  }
  return x;
}

// Prefill of two sequences of different lengths, then one decode token
// each: the latent cache append and the absorbed attention against the
// naive form over the tokens written so far.
TEST(LatentAttention, AbsorbedEqualsNaiveOverTheLatentCache) {
  const int64_t heads = 3, nope = 4, rope = 6, vDim = 5, rank = 7, B = 2, T = 6;
  const double factor = 1.25; // a YaRN-like attention_factor on cos and sin
  const float scale = 0.3f, epsilon = 1e-6f;
  moert_rope_config_t cfg = defaultRope(factor);
  Ints seq = {0, 0, 0, 1, 1, 0, 1}, pos = {0, 1, 2, 0, 1, 3, 2};
  const int64_t S = seq.size(), qRow = nope + rope, row = rank + rope;
  Floats q = randomFloats(S * heads * qRow, 11, 2.0f),
         kv = randomFloats(S * row, 12, 2.0f), norm = randomFloats(rank, 13),
         kvB = randomFloats(heads * (nope + vDim) * rank, 14);
  // The naive oracle: latent and k_pe per token, then per-head keys/values.
  std::vector<std::vector<double>> latent(S), kPe(S);
  for (int64_t s = 0; s < S; ++s) {
    double squares = 0;
    for (int64_t j = 0; j < rank; ++j)
      squares += double(kv[s * row + j]) * kv[s * row + j];
    double inverse = 1.0 / std::sqrt(squares / rank + epsilon);
    for (int64_t j = 0; j < rank; ++j)
      latent[s].push_back(norm[j] * kv[s * row + j] * inverse);
    kPe[s] = rotatePairs(std::vector<double>(kv.begin() + s * row + rank,
                                             kv.begin() + (s + 1) * row),
                         pos[s], cfg.theta, factor);
  }
  auto wkv = [&](int64_t h, int64_t i, int64_t j) {
    return double(kvB[(h * (nope + vDim) + i) * rank + j]);
  };
  std::vector<double> want(S * heads * vDim, 0.0), cacheWant(B * T * row, 0.0);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < heads; ++h) {
      const float *qs = &q[(s * heads + h) * qRow];
      std::vector<double> qPe = rotatePairs(
          std::vector<double>(qs + nope, qs + qRow), pos[s], cfg.theta, factor);
      std::vector<double> scores;
      std::vector<int64_t> keys;
      for (int64_t t = 0; t < S; ++t)
        if (seq[t] == seq[s] && pos[t] <= pos[s]) {
          double dot = 0;
          for (int64_t n = 0; n < nope; ++n) {
            double kNope = 0;
            for (int64_t j = 0; j < rank; ++j)
              kNope += wkv(h, n, j) * latent[t][j];
            dot += qs[n] * kNope;
          }
          for (int64_t d = 0; d < rope; ++d)
            dot += qPe[d] * kPe[t][d];
          scores.push_back(dot * scale);
          keys.push_back(t);
        }
      double top = *std::max_element(scores.begin(), scores.end()), sum = 0;
      for (double &x : scores)
        sum += x = std::exp(x - top);
      for (size_t k = 0; k < keys.size(); ++k)
        for (int64_t v = 0; v < vDim; ++v) {
          double value = 0;
          for (int64_t j = 0; j < rank; ++j)
            value += wkv(h, nope + v, j) * latent[keys[k]][j];
          want[(s * heads + h) * vDim + v] += scores[k] / sum * value;
        }
    }
  for (int64_t s = 0; s < S; ++s) {
    double *at = &cacheWant[(seq[s] * T + pos[s]) * row];
    std::copy(latent[s].begin(), latent[s].end(), at);
    std::copy(kPe[s].begin(), kPe[s].end(), at + rank);
  }

  onOneRank([&](moert_context_t ctx) {
    int64_t cacheElems = B * T * row;
    Buffer qb(ctx, q, MOERT_F32), kvb(ctx, kv, MOERT_F32),
        nb(ctx, norm, MOERT_F32), wb(ctx, kvB, MOERT_F32),
        cache(ctx, cacheElems * 4), out(ctx, S * heads * vDim * 4);
    check(moert_buffer_fill(ctx, cache.view(MOERT_F32), cacheElems, 0.0));
    check(moert_buffer_fill(ctx, out.view(MOERT_F32), S * heads * vDim, NAN));
    Floats qBefore = qb.download<float>(MOERT_F32, q.size());
    auto step = [&](int64_t first, int64_t count) {
      Buffer sb(ctx, Ints(seq.begin() + first, seq.begin() + first + count),
                MOERT_I32),
          pb(ctx, Ints(pos.begin() + first, pos.begin() + first + count),
             MOERT_I32);
      check(moert_latent_append(ctx, &cfg, kvb.view(MOERT_F32, first * row),
                                nb.view(MOERT_F32), cache.view(MOERT_F32),
                                sb.view(MOERT_I32), pb.view(MOERT_I32), count,
                                rank, rope, B, T, epsilon));
      check(moert_latent_attention(
          ctx, &cfg, qb.view(MOERT_F32, first * heads * qRow),
          wb.view(MOERT_F32), cache.view(MOERT_F32), sb.view(MOERT_I32),
          pb.view(MOERT_I32), out.view(MOERT_F32, first * heads * vDim), count,
          heads, nope, rope, vDim, rank, B, T, scale));
    };
    step(0, 5); // prefill
    step(5, 1); // decode, sequence 0
    step(6, 1); // decode, sequence 1
    expectClose(out.download<float>(MOERT_F32, S * heads * vDim), want, 2e-5);
    expectClose(cache.download<float>(MOERT_F32, cacheElems), cacheWant, 2e-5);
    EXPECT_EQ(qb.download<float>(MOERT_F32, q.size()), qBefore)
        << "q must not be modified";

    Buffer badSeq(ctx, Ints{2}, MOERT_I32), zero(ctx, Ints{0}, MOERT_I32);
    EXPECT_MOERT_ERROR(
        moert_latent_append(ctx, &cfg, kvb.view(MOERT_F32), nb.view(MOERT_F32),
                            cache.view(MOERT_F32), badSeq.view(MOERT_I32),
                            zero.view(MOERT_I32), 1, rank, rope, B, T, epsilon),
        MOERT_INVALID_ARGUMENT,
        "token 0 has sequence 2 position 0 outside the latent cache [2 "
        "sequences x 6 positions]");
    EXPECT_MOERT_ERROR(moert_latent_attention(
                           ctx, &cfg, qb.view(MOERT_F32), wb.view(MOERT_F32),
                           cache.view(MOERT_F32), zero.view(MOERT_I32),
                           zero.view(MOERT_I32), out.view(MOERT_F32), 1, heads,
                           nope, 5, vDim, rank, B, T, scale),
                       MOERT_INVALID_ARGUMENT, "rope_dim (even)");
    EXPECT_MOERT_ERROR(moert_latent_attention(
                           ctx, &cfg, qb.view(MOERT_F32), wb.view(MOERT_F32),
                           cache.view(MOERT_F32, 1), zero.view(MOERT_I32),
                           zero.view(MOERT_I32), out.view(MOERT_F32), 1, heads,
                           nope, rope, vDim, rank, B, T, scale),
                       MOERT_INVALID_ARGUMENT, "cache");
    // Its rope dims always rotate, in interleaved pairs: the config's own
    // width and pairing are refused.
    for (int interleaved = 0; interleaved < 2; ++interleaved) {
      moert_rope_config_t other = cfg;
      other.interleaved = interleaved;
      other.rotary_dim = interleaved ? 0 : 2;
      EXPECT_MOERT_ERROR(
          moert_latent_append(ctx, &other, kvb.view(MOERT_F32),
                              nb.view(MOERT_F32), cache.view(MOERT_F32),
                              zero.view(MOERT_I32), zero.view(MOERT_I32), 1,
                              rank, rope, B, T, epsilon),
          MOERT_INVALID_ARGUMENT,
          "latent attention takes no longrope, rotary_dim or interleaved");
    }
  });
}

// `values` converted to `dtype` in a new buffer.
Buffer converted(moert_context_t ctx, const Floats &values,
                 moert_dtype_t dtype) {
  Buffer wide(ctx, values, MOERT_F32), out(ctx, values.size() * 4);
  check(moert_buffer_copy(ctx, wide.view(MOERT_F32), out.view(dtype),
                          values.size()));
  return out;
}

// bf16 activations and cache: the same results to bf16 rounding.
TEST(LatentAttention, Bf16CacheAndActivations) {
  const int64_t heads = 2, nope = 4, rope = 4, vDim = 4, rank = 8, B = 1, T = 4,
                S = 3, qRow = nope + rope, row = rank + rope;
  moert_rope_config_t cfg = defaultRope(1.0);
  Ints seq = {0, 0, 0}, pos = {0, 1, 2};
  Floats q = randomFloats(S * heads * qRow, 21), kv = randomFloats(S * row, 22),
         norm = randomFloats(rank, 23),
         kvB = randomFloats(heads * (nope + vDim) * rank, 24);
  onOneRank([&](moert_context_t ctx) {
    auto run = [&](moert_dtype_t dtype) {
      Buffer qb = converted(ctx, q, dtype), kvb = converted(ctx, kv, dtype),
             nb = converted(ctx, norm, dtype), wb = converted(ctx, kvB, dtype);
      Buffer sb(ctx, seq, MOERT_I32), pb(ctx, pos, MOERT_I32),
          cache(ctx, B * T * row * 4), out(ctx, S * heads * vDim * 4),
          wide(ctx, S * heads * vDim * 4);
      check(moert_latent_append(
          ctx, &cfg, kvb.view(dtype), nb.view(dtype), cache.view(dtype),
          sb.view(MOERT_I32), pb.view(MOERT_I32), S, rank, rope, B, T, 1e-6f));
      check(moert_latent_attention(ctx, &cfg, qb.view(dtype), wb.view(dtype),
                                   cache.view(dtype), sb.view(MOERT_I32),
                                   pb.view(MOERT_I32), out.view(dtype), S,
                                   heads, nope, rope, vDim, rank, B, T, 0.35f));
      check(moert_buffer_copy(ctx, out.view(dtype), wide.view(MOERT_F32),
                              S * heads * vDim));
      return wide.download<float>(MOERT_F32, S * heads * vDim);
    };
    Floats f32 = run(MOERT_F32), bf16 = run(MOERT_BF16);
    expectClose(bf16, std::vector<double>(f32.begin(), f32.end()), 5e-2);
  });
}

// The extents of a latent attention call.
struct MlaDims {
  int64_t heads, nope, rope, vDim, rank;
  int64_t qRow() const { return nope + rope; }
  int64_t row() const { return rank + rope; }
};

// The naive form in double precision: every token's latent and k_pe as
// moert_latent_append stores them, per-head keys [W_UK c_t, k_pe_t] and
// values W_UV c_t, causal softmax over the tokens of the same sequence at
// or before the query's position. [tokens, heads, vDim].
std::vector<double> naiveOracle(const MlaDims &d, const Ints &seq,
                                const Ints &pos, const Floats &q,
                                const Floats &kv, const Floats &norm,
                                const Floats &kvB, double theta, double factor,
                                double scale, double epsilon) {
  const int64_t S = seq.size(), row = d.row(), qRow = d.qRow();
  std::vector<std::vector<double>> latent(S), kPe(S);
  for (int64_t s = 0; s < S; ++s) {
    double squares = 0;
    for (int64_t j = 0; j < d.rank; ++j)
      squares += double(kv[s * row + j]) * kv[s * row + j];
    double inverse = 1.0 / std::sqrt(squares / d.rank + epsilon);
    for (int64_t j = 0; j < d.rank; ++j)
      latent[s].push_back(norm[j] * kv[s * row + j] * inverse);
    kPe[s] = rotatePairs(std::vector<double>(kv.begin() + s * row + d.rank,
                                             kv.begin() + (s + 1) * row),
                         pos[s], theta, factor);
  }
  auto project = [&](int64_t h, int64_t i, int64_t t) { // (kv_b[h] c_t)[i]
    double sum = 0;
    for (int64_t j = 0; j < d.rank; ++j)
      sum +=
          double(kvB[(h * (d.nope + d.vDim) + i) * d.rank + j]) * latent[t][j];
    return sum;
  };
  std::vector<double> want(S * d.heads * d.vDim, 0.0);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < d.heads; ++h) {
      const float *qs = &q[(s * d.heads + h) * qRow];
      std::vector<double> qPe = rotatePairs(
          std::vector<double>(qs + d.nope, qs + qRow), pos[s], theta, factor);
      std::vector<double> scores;
      std::vector<int64_t> keys;
      for (int64_t t = 0; t < S; ++t)
        if (seq[t] == seq[s] && pos[t] <= pos[s]) {
          double dot = 0;
          for (int64_t n = 0; n < d.nope; ++n)
            dot += qs[n] * project(h, n, t);
          for (int64_t i = 0; i < d.rope; ++i)
            dot += qPe[i] * kPe[t][i];
          scores.push_back(dot * scale);
          keys.push_back(t);
        }
      double top = *std::max_element(scores.begin(), scores.end()), sum = 0;
      for (double &x : scores)
        sum += x = std::exp(x - top);
      for (size_t k = 0; k < keys.size(); ++k)
        for (int64_t v = 0; v < d.vDim; ++v)
          want[(s * d.heads + h) * d.vDim + v] +=
              scores[k] / sum * project(h, d.nope + v, keys[k]);
    }
  return want;
}

// Sets MOERT_CPU_LATENT_FORM for a scope (empty: unset, the work estimate
// picks), and unsets it after.
class LatentFormScope {
public:
  explicit LatentFormScope(const char *form) {
    if (*form)
      setenv("MOERT_CPU_LATENT_FORM", form, 1);
    else
      unsetenv("MOERT_CPU_LATENT_FORM");
  }
  ~LatentFormScope() { unsetenv("MOERT_CPU_LATENT_FORM"); }
};

// Two prompts of 37 and 20 tokens in one call (interleaved; several GEMM
// row blocks, 33 kv_b rows: a partial panel), then a call continuing the
// second prompt by 17 tokens over its cached positions beside a decode
// token of the first: the absorbed and the naive form (forced), and the
// forms the work estimate picks (naive for the prompts and the chunk,
// absorbed for the decode token), with kv_b in f32 and in bf16, each
// against the double-precision oracle.
TEST(LatentAttention, NaiveAndAbsorbedFormsAgreeWithTheOracle) {
  const MlaDims d{3, 5, 4, 6, 9};
  const int64_t B = 3, T = 48;
  const double factor = 1.1;
  const float scale = 0.25f, epsilon = 1e-6f;
  moert_rope_config_t cfg = defaultRope(factor);
  Ints seq, pos;
  for (int32_t p = 0; p < 37; ++p) { // call 1: sequences 0 and 2
    seq.push_back(0), pos.push_back(p);
    if (p < 20)
      seq.push_back(2), pos.push_back(p);
  }
  const int64_t firstCall = seq.size();
  for (int32_t p = 20; p < 37; ++p) // call 2: a chunk of sequence 2 ...
    seq.push_back(2), pos.push_back(p);
  seq.push_back(0), pos.push_back(37); // ... and a decode of sequence 0
  const int64_t S = seq.size(), outElems = S * d.heads * d.vDim;
  Floats q = randomFloats(S * d.heads * d.qRow(), 31, 2.0f),
         kv = randomFloats(S * d.row(), 32, 2.0f),
         norm = randomFloats(d.rank, 33),
         kvB = randomFloats(d.heads * (d.nope + d.vDim) * d.rank, 34);

  onOneRank([&](moert_context_t ctx) {
    // kv_b rounded to bf16 once, so the f32 and bf16 weights are the same
    // values and one oracle serves both.
    Buffer narrow = converted(ctx, kvB, MOERT_BF16), wide(ctx, kvB.size() * 4);
    check(moert_buffer_copy(ctx, narrow.view(MOERT_BF16), wide.view(MOERT_F32),
                            kvB.size()));
    Floats rounded = wide.download<float>(MOERT_F32, kvB.size());
    std::vector<double> want = naiveOracle(d, seq, pos, q, kv, norm, rounded,
                                           cfg.theta, factor, scale, epsilon);
    Buffer qb(ctx, q, MOERT_F32), kvb(ctx, kv, MOERT_F32),
        nb(ctx, norm, MOERT_F32), cache(ctx, B * T * d.row() * 4),
        out(ctx, outElems * 4);
    for (const char *form : {"absorbed", "naive", ""})
      for (moert_dtype_t weights : {MOERT_F32, MOERT_BF16}) {
        SCOPED_TRACE(std::string("form '") + form + "', kv_b " +
                     (weights == MOERT_F32 ? "f32" : "bf16"));
        LatentFormScope scope(form);
        moert_view_t kvBView =
            weights == MOERT_F32 ? wide.view(MOERT_F32) : narrow.view(weights);
        check(moert_buffer_fill(ctx, cache.view(MOERT_F32), B * T * d.row(),
                                0.0));
        check(moert_buffer_fill(ctx, out.view(MOERT_F32), outElems, NAN));
        for (auto [first, count] : {std::pair<int64_t, int64_t>{0, firstCall},
                                    {firstCall, S - firstCall}}) {
          Buffer sb(ctx, Ints(seq.begin() + first, seq.begin() + first + count),
                    MOERT_I32),
              pb(ctx, Ints(pos.begin() + first, pos.begin() + first + count),
                 MOERT_I32);
          check(moert_latent_append(
              ctx, &cfg, kvb.view(MOERT_F32, first * d.row()),
              nb.view(MOERT_F32), cache.view(MOERT_F32), sb.view(MOERT_I32),
              pb.view(MOERT_I32), count, d.rank, d.rope, B, T, epsilon));
          check(moert_latent_attention(
              ctx, &cfg, qb.view(MOERT_F32, first * d.heads * d.qRow()),
              kvBView, cache.view(MOERT_F32), sb.view(MOERT_I32),
              pb.view(MOERT_I32), out.view(MOERT_F32, first * d.heads * d.vDim),
              count, d.heads, d.nope, d.rope, d.vDim, d.rank, B, T, scale));
        }
        expectClose(out.download<float>(MOERT_F32, outElems), want, 2e-5);
      }

    LatentFormScope scope("fused");
    Buffer zero(ctx, Ints{0}, MOERT_I32);
    EXPECT_MOERT_ERROR(
        moert_latent_attention(ctx, &cfg, qb.view(MOERT_F32),
                               wide.view(MOERT_F32), cache.view(MOERT_F32),
                               zero.view(MOERT_I32), zero.view(MOERT_I32),
                               out.view(MOERT_F32), 1, d.heads, d.nope, d.rope,
                               d.vDim, d.rank, B, T, scale),
        MOERT_INVALID_ARGUMENT,
        "MOERT_CPU_LATENT_FORM must be 'absorbed' or 'naive', got 'fused'");
  });
}

} // namespace
