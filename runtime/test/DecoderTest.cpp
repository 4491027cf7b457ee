//===- runtime/test/DecoderTest.cpp - Linear, embedding, RoPE, attention --===//
//
// Oracles: naive double-precision loops written from runtime/moert.h (and,
// for the rope types, from the Hugging Face ROPE_INIT_FUNCTIONS formulas
// spelled out again here, independently of runtime/common/Rope.h).
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "runtime/common/Convert.h"

#include <random>

using namespace moert;
using namespace moert::test;

namespace {

using Floats = std::vector<float>;
using Ints = std::vector<int32_t>;
constexpr double kPi = 3.14159265358979323846;

moert_rope_config_t ropeConfig(moert_rope_type_t type) {
  moert_rope_config_t cfg{};
  cfg.type = type;
  cfg.theta = 10000.0;
  cfg.factor = type == MOERT_ROPE_DEFAULT ? 1.0 : 4.0;
  cfg.low_freq_factor = 1.0;
  cfg.high_freq_factor = 4.0;
  cfg.beta_fast = 32.0;
  cfg.beta_slow = 1.0;
  cfg.attention_factor = type == MOERT_ROPE_YARN ? 1.1386 : 1.0;
  cfg.original_max_position = 64;
  cfg.truncate = 1;
  return cfg;
}

// inv_freq as transformers' _compute_*_parameters write it.
std::vector<double> referenceInvFreq(const moert_rope_config_t &cfg,
                                     int64_t dim) {
  std::vector<double> inv(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i)
    inv[i] = 1.0 / std::pow(cfg.theta, 2.0 * i / dim);
  if (cfg.type == MOERT_ROPE_LINEAR)
    for (double &f : inv)
      f /= cfg.factor;
  if (cfg.type == MOERT_ROPE_LLAMA3) {
    double old = cfg.original_max_position;
    double lowWavelen = old / cfg.low_freq_factor,
           highWavelen = old / cfg.high_freq_factor;
    for (double &f : inv) {
      double wavelen = 2 * kPi / f;
      if (wavelen > lowWavelen) {
        f /= cfg.factor;
      } else if (wavelen >= highWavelen) {
        double smooth = (old / wavelen - cfg.low_freq_factor) /
                        (cfg.high_freq_factor - cfg.low_freq_factor);
        f = (1 - smooth) * f / cfg.factor + smooth * f;
      }
    }
  }
  if (cfg.type == MOERT_ROPE_YARN) {
    auto correction = [&](double rotations) {
      return dim * std::log(cfg.original_max_position / (rotations * 2 * kPi)) /
             (2 * std::log(cfg.theta));
    };
    double low = std::max(std::floor(correction(cfg.beta_fast)), 0.0);
    double high = std::min(std::ceil(correction(cfg.beta_slow)), dim - 1.0);
    for (int64_t i = 0; i < dim / 2; ++i) {
      double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      double extrapolation = 1 - ramp;
      inv[i] =
          inv[i] / cfg.factor * (1 - extrapolation) + inv[i] * extrapolation;
    }
  }
  return inv;
}

TEST(Decoder, LinearWithBiasRoundsToTheOutputDtype) {
  const int64_t S = 3, N = 5, K = 7;
  Floats x = randomFloats(S * K, 1), w = randomFloats(N * K, 2),
         b = randomFloats(N, 3);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), wb(ctx, w, MOERT_F32), bb(ctx, b, MOERT_F32),
        out(ctx, S * N * 4);
    check(moert_buffer_fill(ctx, out.view(MOERT_F32), S * N, NAN));
    check(moert_linear(ctx, xb.view(MOERT_F32), wb.view(MOERT_F32),
                       bb.view(MOERT_F32), out.view(MOERT_F32), S, N, K));
    std::vector<double> want(S * N);
    for (int64_t s = 0; s < S; ++s)
      for (int64_t n = 0; n < N; ++n) {
        want[s * N + n] = b[n];
        for (int64_t k = 0; k < K; ++k)
          want[s * N + n] += double(x[s * K + k]) * w[n * K + k];
      }
    expectClose(out.download<float>(MOERT_F32, S * N), want, 1e-5);
    check(moert_linear(ctx, xb.view(MOERT_F32), wb.view(MOERT_F32),
                       bb.view(MOERT_F32), out.view(MOERT_BF16), S, N, K));
    Buffer wide(ctx, S * N * 4);
    check(moert_buffer_copy(ctx, out.view(MOERT_BF16), wide.view(MOERT_F32),
                            S * N));
    expectClose(wide.download<float>(MOERT_F32, S * N), want, 2e-2);
  });
}

TEST(Decoder, EmbeddingGathersRowsAndRejectsBadIds) {
  const int64_t V = 6, H = 4;
  Floats table = randomFloats(V * H, 4);
  Ints ids = {5, 0, 5, 2};
  onOneRank([&](moert_context_t ctx) {
    Buffer tb(ctx, table, MOERT_F32), ib(ctx, ids, MOERT_I32),
        out(ctx, ids.size() * H * 4);
    check(moert_embedding(ctx, ib.view(MOERT_I32), tb.view(MOERT_F32),
                          out.view(MOERT_F32), ids.size(), V, H));
    Floats got = out.download<float>(MOERT_F32, ids.size() * H);
    for (size_t s = 0; s < ids.size(); ++s)
      for (int64_t h = 0; h < H; ++h)
        EXPECT_EQ(got[s * H + h], table[ids[s] * H + h]);
    Buffer bad(ctx, Ints{1, 6}, MOERT_I32);
    EXPECT_MOERT_ERROR(moert_embedding(ctx, bad.view(MOERT_I32),
                                       tb.view(MOERT_F32), out.view(MOERT_F32),
                                       2, V, H),
                       MOERT_INVALID_ARGUMENT,
                       "token 1 has id 6 outside the vocabulary [0, 6)");
  });
}

// x [tokens, heads, D] rotated in doubles: pairs (i, i + R/2), or (2i,
// 2i + 1) when interleaved, over the first R = rotary_dim (0: D) dims,
// cos and sin times attention_factor; the other dims as they are.
std::vector<double> referenceRope(const moert_rope_config_t &cfg,
                                  const Floats &x, const Ints &pos,
                                  int64_t heads, int64_t D) {
  const int64_t R = cfg.rotary_dim ? cfg.rotary_dim : D;
  std::vector<double> inv = referenceInvFreq(cfg, R), want(x.begin(), x.end());
  for (size_t s = 0; s < pos.size(); ++s)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < R / 2; ++i) {
        double c = std::cos(pos[s] * inv[i]) * cfg.attention_factor,
               sn = std::sin(pos[s] * inv[i]) * cfg.attention_factor;
        int64_t row = (static_cast<int64_t>(s) * heads + h) * D;
        int64_t a = row + (cfg.interleaved ? 2 * i : i),
                b = row + (cfg.interleaved ? 2 * i + 1 : i + R / 2);
        want[a] = x[a] * c - x[b] * sn;
        want[b] = x[b] * c + x[a] * sn;
      }
  return want;
}

class RopeTypes : public ::testing::TestWithParam<moert_rope_type_t> {};

TEST_P(RopeTypes, RotatesHalvesAtEachPosition) {
  const int64_t S = 3, heads = 2, D = 16;
  moert_rope_config_t cfg = ropeConfig(GetParam());
  Floats x = randomFloats(S * heads * D, 5);
  Ints pos = {0, 7, 300};
  std::vector<double> want = referenceRope(cfg, x, pos, heads, D);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, x, MOERT_F32), pb(ctx, pos, MOERT_I32);
    check(moert_rope(ctx, &cfg, xb.view(MOERT_F32), pb.view(MOERT_I32), S,
                     heads, D));
    // fp32 angles at position 300 carry ~3e-5 of rounding.
    expectClose(xb.download<float>(MOERT_F32, x.size()), want, 1e-4);
  });
}

INSTANTIATE_TEST_SUITE_P(Decoder, RopeTypes,
                         ::testing::Values(MOERT_ROPE_DEFAULT,
                                           MOERT_ROPE_LINEAR, MOERT_ROPE_LLAMA3,
                                           MOERT_ROPE_YARN));

// GLM-4.5's partial rotary embedding (the first rotary_dim dims of each
// head rotate as a rotary_dim-wide head would, the rest stay bit for bit)
// and ERNIE-4.5's interleaved pairs (dims 2i and 2i + 1 rotate by
// inv_freq[i]), apart and together; bad values are refused.
TEST(Decoder, RopeRotatesPartialHeadsAndInterleavedPairs) {
  const int64_t S = 2, heads = 3, D = 16;
  struct Case {
    int64_t rotaryDim;
    int32_t interleaved;
  };
  for (Case c : {Case{6, 0}, Case{0, 1}, Case{8, 1}}) {
    moert_rope_config_t cfg = ropeConfig(MOERT_ROPE_DEFAULT);
    cfg.rotary_dim = c.rotaryDim;
    cfg.interleaved = c.interleaved;
    Floats x = randomFloats(S * heads * D, 9);
    Ints pos = {3, 41};
    std::vector<double> want = referenceRope(cfg, x, pos, heads, D);
    onOneRank([&](moert_context_t ctx) {
      Buffer xb(ctx, x, MOERT_F32), pb(ctx, pos, MOERT_I32);
      check(moert_rope(ctx, &cfg, xb.view(MOERT_F32), pb.view(MOERT_I32), S,
                       heads, D));
      Floats got = xb.download<float>(MOERT_F32, x.size());
      expectClose(got, want, 1e-5);
      for (int64_t row = 0; row < S * heads; ++row)
        for (int64_t d = c.rotaryDim ? c.rotaryDim : D; d < D; ++d)
          EXPECT_EQ(got[row * D + d], x[row * D + d])
              << "row " << row << " dim " << d;
    });
  }
  moert_rope_config_t cfg = ropeConfig(MOERT_ROPE_DEFAULT);
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, Floats(S * heads * D, 1.0f), MOERT_F32),
        pb(ctx, Ints{0, 1}, MOERT_I32);
    auto expectRefused = [&](const char *why) {
      EXPECT_MOERT_ERROR(moert_rope(ctx, &cfg, xb.view(MOERT_F32),
                                    pb.view(MOERT_I32), S, heads, D),
                         MOERT_INVALID_ARGUMENT, why);
    };
    cfg.rotary_dim = 18;
    expectRefused("rope rotary_dim 18 exceeds head_dim 16");
    cfg.rotary_dim = 5;
    expectRefused("rope rotary_dim must be even and >= 0");
    cfg.rotary_dim = 0;
    cfg.interleaved = 2;
    expectRefused("rope interleaved must be 0 or 1, got 2");
  });
}

// LongRoPE (Phi-3): per-pair factors and mscales, short when the call's
// largest position + 1 is at most original_max_position, long past it;
// transformers' _compute_longrope_parameters and Phimoe's mscale switch
// spelled out in doubles.
// LongRoPE with theta 10000 and an original context of 8 positions; the
// factors and mscales are each test's.
moert_rope_config_t longRopeConfig() {
  moert_rope_config_t cfg{};
  cfg.type = MOERT_ROPE_LONGROPE;
  cfg.theta = 10000.0;
  cfg.factor = 1.0;
  cfg.attention_factor = 1.0;
  cfg.original_max_position = 8;
  return cfg;
}

TEST(Decoder, LongRopeSwitchesFactorsByTheCallsLargestPosition) {
  const int64_t heads = 2, D = 8, half = D / 2;
  moert_rope_config_t cfg = longRopeConfig();
  const float shortFactor[] = {1.0f, 1.25f, 1.5f, 2.0f};
  const float longFactor[] = {1.0f, 3.0f, 7.5f, 20.0f};
  for (int64_t i = 0; i < half; ++i) {
    cfg.short_factor[i] = shortFactor[i];
    cfg.long_factor[i] = longFactor[i];
  }
  cfg.short_mscale = 1.05;
  cfg.long_mscale = 1.25;
  auto expectRotation = [&](const Ints &pos, bool wantLong) {
    const int64_t S = static_cast<int64_t>(pos.size());
    Floats x = randomFloats(S * heads * D, 11);
    std::vector<double> want(x.size());
    const float *ext = wantLong ? longFactor : shortFactor;
    double mscale = wantLong ? cfg.long_mscale : cfg.short_mscale;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          double inv = 1.0 / (ext[i] * std::pow(cfg.theta, 2.0 * i / D));
          double c = std::cos(pos[s] * inv) * mscale,
                 sn = std::sin(pos[s] * inv) * mscale;
          int64_t at = (s * heads + h) * D + i;
          want[at] = x[at] * c - x[at + half] * sn;
          want[at + half] = x[at + half] * c + x[at] * sn;
        }
    onOneRank([&](moert_context_t ctx) {
      Buffer xb(ctx, x, MOERT_F32), pb(ctx, pos, MOERT_I32);
      check(moert_rope(ctx, &cfg, xb.view(MOERT_F32), pb.view(MOERT_I32), S,
                       heads, D));
      expectClose(xb.download<float>(MOERT_F32, x.size()), want, 1e-5);
    });
  };
  // Prefill of 8 (largest position 7): short, every token.
  expectRotation({0, 1, 2, 3, 4, 5, 6, 7}, false);
  // A 9-token prefill: long for all its tokens, the early ones too.
  expectRotation({0, 1, 2, 3, 4, 5, 6, 7, 8}, true);
  // Decode steps: position 7 is short, position 8 long.
  expectRotation({7}, false);
  expectRotation({8}, true);
  // Two sequences decoding together: the call's largest position decides.
  expectRotation({3, 8}, true);
}

TEST(Decoder, LongRopeRejectsBadFactors) {
  moert_rope_config_t cfg = longRopeConfig();
  cfg.short_mscale = cfg.long_mscale = 1.0;
  for (int64_t i = 0; i < 4; ++i)
    cfg.short_factor[i] = cfg.long_factor[i] = 1.0f;
  cfg.long_factor[2] = 0.0f;
  onOneRank([&](moert_context_t ctx) {
    Buffer xb(ctx, Floats(2 * 8, 1.0f), MOERT_F32),
        pb(ctx, Ints{0, 1}, MOERT_I32);
    EXPECT_MOERT_ERROR(
        moert_rope(ctx, &cfg, xb.view(MOERT_F32), pb.view(MOERT_I32), 2, 1, 8),
        MOERT_INVALID_ARGUMENT, "longrope factor 2 must be finite and > 0");
    cfg.long_factor[2] = 1.0f;
    EXPECT_MOERT_ERROR(moert_rope(ctx, &cfg, xb.view(MOERT_F32),
                                  pb.view(MOERT_I32), 1, 1,
                                  2 * (MOERT_ROPE_MAX_FACTORS + 1)),
                       MOERT_INVALID_ARGUMENT, "MOERT_ROPE_MAX_FACTORS");
    cfg.original_max_position = 0;
    EXPECT_MOERT_ERROR(
        moert_rope(ctx, &cfg, xb.view(MOERT_F32), pb.view(MOERT_I32), 2, 1, 8),
        MOERT_INVALID_ARGUMENT, "longrope needs original_max_position >= 1");
  });
}

// Attention options: a sliding window (0: none) and per-head sinks (f32,
// or bf16 as a bf16 model stores them).
struct AttentionCase {
  int64_t window;
  bool sinks;
  moert_dtype_t sinkType = MOERT_F32;
  // Prompts of 40 and 35 tokens in one call: the CPU backend's blocks of
  // 32 tokens of a sequence, and their rest, share widened cache rows.
  bool longPrompts = false;
  // A bf16 cache holds k and v rounded: the reference reads those values.
  moert_dtype_t cacheType = MOERT_F32;
};

class AttentionCases : public ::testing::TestWithParam<AttentionCase> {};

// Prefill of two sequences of different lengths, then decode tokens one at
// a time (past the window where there is one), against softmax attention
// over the tokens of the sequence in the window, a sink an extra logit with
// no value.
TEST_P(AttentionCases, CausalGroupedQueryAttentionOverTheCache) {
  const bool longPrompts = GetParam().longPrompts;
  const int64_t heads = 4, kvHeads = 2, D = 8, B = 2, T = longPrompts ? 48 : 8;
  const int64_t window = GetParam().window;
  const float scale = 1.0f / std::sqrt(float(D));
  Ints seq = {0, 0, 0, 1, 1, 0, 1, 0, 0, 1},
       pos = {0, 1, 2, 0, 1, 3, 2, 4, 5, 3};
  int64_t prefill = 5;
  if (longPrompts) {
    seq.clear();
    pos.clear();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = 0; p < 40 - 5 * b; ++p) {
        seq.push_back(b);
        pos.push_back(p);
      }
    prefill = seq.size();
    // Then decode tokens, one call each.
    seq.insert(seq.end(), {1, 0, 1});
    pos.insert(pos.end(), {35, 40, 36});
  }
  const int64_t S = seq.size();
  Floats q = randomFloats(S * heads * D, 6, 2.0f),
         k = randomFloats(S * kvHeads * D, 7, 2.0f),
         v = randomFloats(S * kvHeads * D, 8),
         sinks = randomFloats(heads, 9, 2.0f);
  std::vector<uint16_t> sinkBits; // bf16 sinks: the values the call reads
  for (float &x : sinks) {
    sinkBits.push_back(floatToBf16(x));
    if (GetParam().sinkType == MOERT_BF16)
      x = bf16ToFloat(sinkBits.back());
  }
  const moert_dtype_t cacheType = GetParam().cacheType;
  Floats kCached = k, vCached = v;
  if (cacheType == MOERT_BF16)
    for (Floats *values : {&kCached, &vCached})
      for (float &x : *values)
        x = bf16ToFloat(floatToBf16(x));
  std::vector<double> want(S * heads * D, 0.0);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < heads; ++h) {
      int64_t g = h / (heads / kvHeads);
      std::vector<double> scores;
      std::vector<int64_t> keys;
      for (int64_t t = 0; t < S; ++t) // my sequence, at <= my position
        if (seq[t] == seq[s] && pos[t] <= pos[s] &&
            (window == 0 || pos[t] > pos[s] - window)) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += double(q[(s * heads + h) * D + d]) *
                   kCached[(t * kvHeads + g) * D + d];
          scores.push_back(dot * scale);
          keys.push_back(t);
        }
      double top = *std::max_element(scores.begin(), scores.end()), sum = 0;
      if (GetParam().sinks)
        top = std::max(top, double(sinks[h]));
      for (double &x : scores)
        sum += x = std::exp(x - top);
      if (GetParam().sinks)
        sum += std::exp(double(sinks[h]) - top);
      for (size_t j = 0; j < keys.size(); ++j)
        for (int64_t d = 0; d < D; ++d)
          want[(s * heads + h) * D + d] +=
              scores[j] / sum * vCached[(keys[j] * kvHeads + g) * D + d];
    }
  onOneRank([&](moert_context_t ctx) {
    int64_t cacheElems = 2 * B * T * kvHeads * D;
    Buffer qb(ctx, q, MOERT_F32), kb(ctx, k, MOERT_F32), vb(ctx, v, MOERT_F32),
        sb = GetParam().sinkType == MOERT_BF16
                 ? Buffer(ctx, sinkBits, MOERT_BF16)
                 : Buffer(ctx, sinks, MOERT_F32),
        cache(ctx, cacheElems * dtypeSize(cacheType)), out(ctx, q.size() * 4);
    moert_view_t sinkView =
        GetParam().sinks ? sb.view(GetParam().sinkType) : moert_absent_view();
    check(moert_buffer_fill(ctx, cache.view(cacheType), cacheElems, NAN));
    check(moert_buffer_fill(ctx, out.view(MOERT_F32), q.size(), NAN));
    // Prefill: the first 5 tokens in one call; then each decode token.
    auto step = [&](int64_t first, int64_t count) {
      Buffer sqb(ctx, Ints(seq.begin() + first, seq.begin() + first + count),
                 MOERT_I32),
          pb(ctx, Ints(pos.begin() + first, pos.begin() + first + count),
             MOERT_I32);
      check(moert_kv_append(ctx, kb.view(MOERT_F32, first * kvHeads * D),
                            vb.view(MOERT_F32, first * kvHeads * D),
                            cache.view(cacheType), sqb.view(MOERT_I32),
                            pb.view(MOERT_I32), count, kvHeads, D, B, T));
      check(moert_attention(ctx, qb.view(MOERT_F32, first * heads * D),
                            cache.view(cacheType), sqb.view(MOERT_I32),
                            pb.view(MOERT_I32), sinkView,
                            out.view(MOERT_F32, first * heads * D), count,
                            heads, kvHeads, D, B, T, scale, window));
    };
    step(0, prefill);
    for (int64_t s = prefill; s < S; ++s)
      step(s, 1);
    expectClose(out.download<float>(MOERT_F32, q.size()), want, 1e-5);

    Buffer badSeq(ctx, Ints{2}, MOERT_I32), zero(ctx, Ints{0}, MOERT_I32);
    EXPECT_MOERT_ERROR(
        moert_kv_append(ctx, kb.view(MOERT_F32), vb.view(MOERT_F32),
                        cache.view(cacheType), badSeq.view(MOERT_I32),
                        zero.view(MOERT_I32), 1, kvHeads, D, B, T),
        MOERT_INVALID_ARGUMENT,
        "token 0 has sequence 2 position 0 outside the KV cache [2 sequences "
        "x " + std::to_string(T) + " positions]");
    EXPECT_MOERT_ERROR(
        moert_attention(ctx, qb.view(MOERT_F32), cache.view(cacheType),
                        zero.view(MOERT_I32), zero.view(MOERT_I32), sinkView,
                        out.view(MOERT_F32), 1, 3, kvHeads, D, B, T, scale,
                        window),
        MOERT_INVALID_ARGUMENT,
        "heads (3) must be a positive multiple of kv_heads (2)");
    EXPECT_MOERT_ERROR(
        moert_attention(ctx, qb.view(MOERT_F32), cache.view(cacheType),
                        zero.view(MOERT_I32), zero.view(MOERT_I32), sinkView,
                        out.view(MOERT_F32), 1, heads, kvHeads, D, B, T, scale,
                        -1),
        MOERT_INVALID_ARGUMENT, "window must be >= 0 (0: none), got -1");
    // Sinks are one logit per query head: heads - 1 are left past offset 1.
    EXPECT_MOERT_ERROR(
        moert_attention(ctx, qb.view(MOERT_F32), cache.view(cacheType),
                        zero.view(MOERT_I32), zero.view(MOERT_I32),
                        sb.view(GetParam().sinkType, 1), out.view(MOERT_F32), 1,
                        heads, kvHeads, D, B, T, scale, window),
        MOERT_INVALID_ARGUMENT, "sinks");
  });
}

INSTANTIATE_TEST_SUITE_P(Decoder, AttentionCases,
                         ::testing::Values(AttentionCase{0, false},
                                           AttentionCase{0, true},
                                           AttentionCase{2, false},
                                           AttentionCase{3, true},
                                           AttentionCase{1, true},
                                           AttentionCase{3, true, MOERT_BF16},
                                           AttentionCase{0, false, MOERT_F32,
                                                         true},
                                           AttentionCase{20, true, MOERT_F32,
                                                         true},
                                           AttentionCase{2, false, MOERT_F32,
                                                         false, MOERT_BF16},
                                           AttentionCase{20, true, MOERT_F32,
                                                         true, MOERT_BF16}));

TEST(Decoder, ArgmaxBreaksTiesTowardTheLowerIndex) {
  Floats logits = {1, 3, 3, 0, -INFINITY, -INFINITY, -1, -1, 2, 2, 2, 2};
  onOneRank([&](moert_context_t ctx) {
    Buffer lb(ctx, logits, MOERT_F32), ids(ctx, 3 * 4);
    check(moert_argmax(ctx, lb.view(MOERT_F32), ids.view(MOERT_I32), 3, 4));
    EXPECT_EQ(ids.download<int32_t>(MOERT_I32, 3), (Ints{1, 2, 0}));
    Buffer nan(ctx, Floats{0, NAN}, MOERT_F32);
    EXPECT_MOERT_ERROR(
        moert_argmax(ctx, nan.view(MOERT_F32), ids.view(MOERT_I32), 1, 2),
        MOERT_INVALID_ARGUMENT, "token 0: logit 1 is NaN");
  });
}

} // namespace
