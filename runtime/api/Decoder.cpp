//===- runtime/api/Decoder.cpp - Linear, embedding, RoPE, attention
//--------===//
//
// The entry points of the decoder around the FFN stack: extents, dtypes and
// bounds checked here; the values of ids, sequences and positions (device
// data) are the backends' to check.
//
//===----------------------------------------------------------------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"
#include "runtime/common/Rope.h"

#include <cmath>

using namespace moert;
using namespace moert::api;

namespace {

// Extents of a KV cache call, checked.
KvCacheShape cacheShape(int64_t kvHeads, int64_t headDim, int64_t maxBatch,
                        int64_t maxSeq) {
  require(kvHeads >= 1 && headDim >= 1 && maxBatch >= 1 && maxSeq >= 1,
          "kv_heads, head_dim, max_batch and max_seq must be >= 1, got ",
          kvHeads, ", ", headDim, ", ", maxBatch, ", ", maxSeq);
  return KvCacheShape{kvHeads, headDim, maxBatch, maxSeq};
}

} // namespace

extern "C" {

moert_status_t moert_linear(moert_context_t ctx, moert_view_t x, moert_view_t w,
                            moert_view_t bias, moert_view_t out, int64_t tokens,
                            int64_t n, int64_t k) {
  return guard("moert_linear", [&] {
    checkContext(ctx);
    require(tokens >= 0 && n >= 1 && k >= 1, "bad extents: tokens ", tokens,
            ", n ", n, ", k ", k);
    Operand input = floatOperand(x, tokens * k, "x");
    Operand weight = floatOperand(w, n * k, "w");
    Operand b = optionalFloatOperand(bias, n, "bias");
    Operand output = floatOperand(out, tokens * n, "out");
    ctx->backend().linear(ctx->rank, input, weight, b, output, tokens, n, k);
  });
}

moert_status_t moert_embedding(moert_context_t ctx, moert_view_t ids,
                               moert_view_t table, moert_view_t out,
                               int64_t tokens, int64_t vocab, int64_t hidden) {
  return guard("moert_embedding", [&] {
    checkContext(ctx);
    require(tokens >= 0 && vocab >= 1 && hidden >= 1, "bad extents");
    Operand idRows = typedOperand(ids, MOERT_I32, tokens, "ids");
    Operand rows = floatOperand(table, vocab * hidden, "table");
    Operand output = floatOperand(out, tokens * hidden, "out");
    ctx->backend().embedding(ctx->rank, idRows, rows, output, tokens, vocab,
                             hidden);
  });
}

moert_status_t moert_rope(moert_context_t ctx, const moert_rope_config_t *cfg,
                          moert_view_t x, moert_view_t positions,
                          int64_t tokens, int64_t heads, int64_t head_dim) {
  return guard("moert_rope", [&] {
    checkContext(ctx);
    checkRopeConfig(cfg);
    require(tokens >= 0 && heads >= 1 && head_dim >= 2 && head_dim % 2 == 0,
            "bad extents: tokens ", tokens, ", heads ", heads,
            ", head_dim (even) ", head_dim);
    require(cfg->rotary_dim <= head_dim, "rope rotary_dim ", cfg->rotary_dim,
            " exceeds head_dim ", head_dim);
    checkRopeFactors(cfg, ropeRotaryDim(*cfg, head_dim));
    Operand rows = floatOperand(x, tokens * heads * head_dim, "x");
    Operand pos = typedOperand(positions, MOERT_I32, tokens, "positions");
    ctx->backend().rope(ctx->rank, *cfg, rows, pos, tokens, heads, head_dim);
  });
}

moert_status_t moert_kv_append(moert_context_t ctx, moert_view_t k,
                               moert_view_t v, moert_view_t cache,
                               moert_view_t sequences, moert_view_t positions,
                               int64_t tokens, int64_t kv_heads,
                               int64_t head_dim, int64_t max_batch,
                               int64_t max_seq) {
  return guard("moert_kv_append", [&] {
    checkContext(ctx);
    require(tokens >= 0, "tokens must be >= 0, got ", tokens);
    KvCacheShape shape = cacheShape(kv_heads, head_dim, max_batch, max_seq);
    int64_t row = kv_heads * head_dim;
    Operand keys = floatOperand(k, tokens * row, "k");
    Operand values = floatOperand(v, tokens * row, "v");
    Operand store = floatOperand(cache, 2 * shape.half(), "cache");
    Operand seq = typedOperand(sequences, MOERT_I32, tokens, "sequences");
    Operand pos = typedOperand(positions, MOERT_I32, tokens, "positions");
    ctx->backend().kvAppend(ctx->rank, keys, values, store, seq, pos, tokens,
                            shape);
  });
}

moert_status_t moert_attention(moert_context_t ctx, moert_view_t q,
                               moert_view_t cache, moert_view_t sequences,
                               moert_view_t positions, moert_view_t sinks,
                               moert_view_t out, int64_t tokens, int64_t heads,
                               int64_t kv_heads, int64_t head_dim,
                               int64_t max_batch, int64_t max_seq, float scale,
                               int64_t window) {
  return guard("moert_attention", [&] {
    checkContext(ctx);
    require(tokens >= 0, "tokens must be >= 0, got ", tokens);
    KvCacheShape shape = cacheShape(kv_heads, head_dim, max_batch, max_seq);
    require(heads >= 1 && heads % kv_heads == 0, "heads (", heads,
            ") must be a positive multiple of kv_heads (", kv_heads, ")");
    require(std::isfinite(scale) && scale > 0.0f,
            "scale must be finite and > 0, got ", scale);
    require(window >= 0, "window must be >= 0 (0: none), got ", window);
    int64_t row = heads * head_dim;
    Operand queries = floatOperand(q, tokens * row, "q");
    Operand store = floatOperand(cache, 2 * shape.half(), "cache");
    Operand seq = typedOperand(sequences, MOERT_I32, tokens, "sequences");
    Operand pos = typedOperand(positions, MOERT_I32, tokens, "positions");
    Operand sinkLogits = optionalFloatOperand(sinks, heads, "sinks");
    Operand output = floatOperand(out, tokens * row, "out");
    ctx->backend().attention(ctx->rank, queries, store, seq, pos, sinkLogits,
                             output, tokens, heads, shape, scale, window);
  });
}

moert_status_t moert_argmax(moert_context_t ctx, moert_view_t logits,
                            moert_view_t ids, int64_t tokens, int64_t vocab) {
  return guard("moert_argmax", [&] {
    checkContext(ctx);
    require(tokens >= 0 && vocab >= 1, "bad extents");
    Operand scores = typedOperand(logits, MOERT_F32, tokens * vocab, "logits");
    Operand out = typedOperand(ids, MOERT_I32, tokens, "ids");
    ctx->backend().argmax(ctx->rank, scores, out, tokens, vocab);
  });
}

} // extern "C"
