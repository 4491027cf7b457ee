//===- runtime/api/LatentAttention.cpp - DeepSeek MLA entry points --------===//
//
// moert_latent_append and moert_latent_attention: extents, dtypes and view
// bounds checked here; sequences and positions (device data) are the
// backends' to check, as for the KV cache calls.
//
//===----------------------------------------------------------------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

#include <cmath>

using namespace moert;
using namespace moert::api;

namespace {

LatentCacheShape latentCacheShape(int64_t rank, int64_t ropeDim,
                                  int64_t maxBatch, int64_t maxSeq) {
  require(rank >= 1 && ropeDim >= 2 && ropeDim % 2 == 0 && maxBatch >= 1 &&
              maxSeq >= 1,
          "rank, rope_dim (even), max_batch and max_seq must be >= 1, >= 2, "
          ">= 1 and >= 1, got ",
          rank, ", ", ropeDim, ", ", maxBatch, ", ", maxSeq);
  return LatentCacheShape{rank, ropeDim, maxBatch, maxSeq};
}

// Latent attention's rope: its rope_dim dims always rotate, in interleaved
// pairs, so the config's own width and pairing must be left at 0.
void checkLatentRope(const moert_rope_config_t *cfg) {
  checkRopeConfig(cfg);
  require(cfg->type != MOERT_ROPE_LONGROPE && cfg->rotary_dim == 0 &&
              !cfg->interleaved,
          "latent attention takes no longrope, rotary_dim or interleaved "
          "(its rope dims always rotate in interleaved pairs)");
}

} // namespace

extern "C" {

moert_status_t
moert_latent_append(moert_context_t ctx, const moert_rope_config_t *cfg,
                    moert_view_t kv, moert_view_t norm, moert_view_t cache,
                    moert_view_t sequences, moert_view_t positions,
                    int64_t tokens, int64_t rank, int64_t rope_dim,
                    int64_t max_batch, int64_t max_seq, float epsilon) {
  return guard("moert_latent_append", [&] {
    checkContext(ctx);
    checkLatentRope(cfg);
    require(tokens >= 0, "tokens must be >= 0, got ", tokens);
    require(std::isfinite(epsilon) && epsilon >= 0.0f,
            "epsilon must be finite and >= 0, got ", epsilon);
    LatentCacheShape shape =
        latentCacheShape(rank, rope_dim, max_batch, max_seq);
    Operand rows = floatOperand(kv, tokens * shape.row(), "kv");
    Operand weight = floatOperand(norm, rank, "norm");
    Operand store = floatOperand(cache, shape.elements(), "cache");
    Operand seq = typedOperand(sequences, MOERT_I32, tokens, "sequences");
    Operand pos = typedOperand(positions, MOERT_I32, tokens, "positions");
    ctx->backend().latentAppend(ctx->rank, *cfg, rows, weight, store, seq, pos,
                                tokens, shape, epsilon);
  });
}

moert_status_t moert_latent_attention(
    moert_context_t ctx, const moert_rope_config_t *cfg, moert_view_t q,
    moert_view_t kv_b, moert_view_t cache, moert_view_t sequences,
    moert_view_t positions, moert_view_t out, int64_t tokens, int64_t heads,
    int64_t nope_dim, int64_t rope_dim, int64_t v_dim, int64_t rank,
    int64_t max_batch, int64_t max_seq, float scale) {
  return guard("moert_latent_attention", [&] {
    checkContext(ctx);
    checkLatentRope(cfg);
    require(tokens >= 0, "tokens must be >= 0, got ", tokens);
    require(heads >= 1 && nope_dim >= 1 && v_dim >= 1,
            "heads, nope_dim and v_dim must be >= 1, got ", heads, ", ",
            nope_dim, ", ", v_dim);
    require(std::isfinite(scale) && scale > 0.0f,
            "scale must be finite and > 0, got ", scale);
    LatentCacheShape shape =
        latentCacheShape(rank, rope_dim, max_batch, max_seq);
    LatentHeads h{heads, nope_dim, v_dim};
    Operand queries =
        floatOperand(q, tokens * heads * (nope_dim + rope_dim), "q");
    Operand kvB = floatOperand(kv_b, heads * (nope_dim + v_dim) * rank, "kv_b");
    Operand store = floatOperand(cache, shape.elements(), "cache");
    Operand seq = typedOperand(sequences, MOERT_I32, tokens, "sequences");
    Operand pos = typedOperand(positions, MOERT_I32, tokens, "positions");
    Operand output = floatOperand(out, tokens * heads * v_dim, "out");
    ctx->backend().latentAttention(ctx->rank, *cfg, queries, kvB, store, seq,
                                   pos, output, tokens, h, shape, scale);
  });
}

} // extern "C"
