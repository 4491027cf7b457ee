/*===- runtime/moert_model.h - ABI of a compiled model ---------*- C -*-===//
 *
 * What C++ emitted by `moe-translate --moe-to-cpp` exports to a runner
 * (moe-run, or your own launcher), and the few inline helpers it calls
 * besides runtime/moert.h. See docs/CompiledModel.md.
 *
 *   const moert_model_info_t *moe_model_info(void);
 *   moert_status_t moe_model_init(moert_context_t ctx, moert_weights_t w,
 *                                 moert_buffer_t state, const char **where);
 *   moert_status_t moe_model_step(moert_context_t ctx, moert_buffer_t state,
 *                                 moert_model_layer_stats_t *stats,
 *                                 int64_t tokens, moert_view_t x,
 *                                 const char **where);
 *   or, for a whole decoder (info->kind == MOERT_MODEL_DECODER):
 *   moert_status_t moe_model_forward(moert_context_t ctx,
 *       moert_buffer_t state, moert_model_layer_stats_t *stats,
 *       int64_t tokens, int64_t samples, moert_view_t ids,
 *       moert_view_t sequences, moert_view_t positions,
 *       moert_view_t sample_rows, moert_view_t logits, moert_view_t next_ids,
 *       const char **where);
 *
 * Per rank: allocate `state_bytes` (moert_buffer_alloc), call init once,
 * then step with x = [tokens <= max_tokens, hidden] of `dtype`, updated in
 * place; or forward tokens <= max_tokens token ids (i32), each with its
 * sequence slot (< max_batch) and position (< max_seq) in the rank's KV
 * caches; of them the `samples` <= max_batch rows sample_rows (i32, each
 * < tokens) get logits [samples, vocab] (f32) and the greedy next_ids
 * [samples] (i32). Each sequence's positions must be written in order
 * (prefill 0..n-1 in one or more calls, then one token per decode call). On
 *failure both return the status and set *where to the call that failed ("layer
 *3: moert_gate"); moert_last_error() has the runtime's message.
 *
 *===----------------------------------------------------------------------===*/
#ifndef MOERT_MOERT_MODEL_H
#define MOERT_MOERT_MODEL_H

#include "runtime/moert.h"

#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moert_model_layer_stats {
  int64_t nanoseconds; /* wall time of the layer on this rank */
  int64_t dropped;     /* choices dropped by capacity (MoE layers) */
  /* Routing statistics: the runner points expert_tokens at room for the
     model's max_experts entries (or leaves it NULL); an MoE layer's gate
     sets experts and writes each expert's kept choices on this rank. */
  int64_t experts;
  int64_t *expert_tokens;
} moert_model_layer_stats_t;

typedef struct moert_model_info {
  const char *name;      /* the model function */
  int32_t nodes;         /* mesh the plan was made for */
  int32_t gpus_per_node;
  int64_t max_tokens;    /* per rank per step */
  int64_t hidden;
  moert_dtype_t dtype;   /* of x */
  int32_t num_layers;    /* stats has this many entries, by layer index */
  int64_t state_bytes;   /* per rank: weights + activation arena */
  int64_t weight_bytes;  /* per rank */
  int64_t peak_bytes;    /* activation arena per rank */
  const char *plan_table; /* moe-assign-parallelism's report */
  int64_t max_experts;    /* the most experts of a layer (0: no MoE layer) */
  int32_t kind;           /* moert_model_kind_t: which step entry exists */
  int64_t vocab;          /* decoder: logits per token */
  int64_t max_batch;      /* decoder: sequences the KV caches hold per rank */
  int64_t max_seq;        /* decoder: positions per sequence */
  int64_t cache_bytes;    /* decoder: KV caches per rank (in state_bytes) */
  int32_t attention_tp;   /* decoder: consecutive ranks that split the heads
                             and must be given the same tokens (1: none) */
  int64_t rope_regime_switch; /* decoder: longrope's original_max_position
                                 (0: none). A generation must stay within
                                 it or start past it: the regime is the
                                 call's, and transformers re-encodes a
                                 sequence that crosses it. */
} moert_model_info_t;

typedef enum moert_model_kind {
  MOERT_MODEL_FFN_STACK = 0, /* moe_model_step over hidden states */
  MOERT_MODEL_DECODER = 1,   /* moe_model_forward over token ids */
} moert_model_kind_t;

typedef const moert_model_info_t *(*moert_model_info_fn)(void);
typedef moert_status_t (*moert_model_init_fn)(moert_context_t, moert_weights_t,
                                              moert_buffer_t, const char **);
typedef moert_status_t (*moert_model_step_fn)(moert_context_t, moert_buffer_t,
                                              moert_model_layer_stats_t *,
                                              int64_t, moert_view_t,
                                              const char **);
typedef moert_status_t (*moert_model_forward_fn)(
    moert_context_t, moert_buffer_t, moert_model_layer_stats_t *, int64_t,
    int64_t, moert_view_t, moert_view_t, moert_view_t, moert_view_t,
    moert_view_t, moert_view_t, const char **);

/*===--- Helpers the emitted code calls -----------------------------------===*/

static inline moert_status_t moert_model_fail(moert_status_t status,
                                              const char **where,
                                              const char *call) {
  if (where)
    *where = call;
  return status;
}

static inline int64_t moert_model_clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Adds: a decoder layer's attention and FFN blocks share its index. */
static inline void moert_model_record_time(moert_model_layer_stats_t *stats,
                                           int64_t layer, int64_t start_ns) {
  if (stats)
    stats[layer].nanoseconds += moert_model_clock_ns() - start_ns;
}

/* stats[layer].dropped = tokens * top_k - sum of the gate's kept counts;
   the counts themselves into stats[layer].expert_tokens when given. */
static inline moert_status_t
moert_model_record_drops(moert_context_t ctx, moert_model_layer_stats_t *stats,
                         int64_t layer, moert_view_t counts, int64_t tokens,
                         int64_t top_k, int64_t experts) {
  int32_t chunk[256];
  int64_t kept = 0;
  if (!stats)
    return MOERT_OK;
  for (int64_t e = 0; e < experts; e += 256) {
    int64_t n = experts - e < 256 ? experts - e : 256;
    moert_view_t part = counts;
    part.offset += e;
    moert_status_t status = moert_buffer_download(ctx, chunk, part, n);
    if (status != MOERT_OK)
      return status;
    for (int64_t i = 0; i < n; ++i) {
      kept += chunk[i];
      if (stats[layer].expert_tokens)
        stats[layer].expert_tokens[e + i] = chunk[i];
    }
  }
  stats[layer].dropped = tokens * top_k - kept;
  stats[layer].experts = experts;
  return MOERT_OK;
}

/* moe_model_init: creates the group of the row of table[rows][cols] (world
   ranks) holding the caller (moe.all_to_all / shard collectives name all
   rows) and keeps it in the context's `slot` for the steps. */
static inline moert_status_t
moert_model_keep_group(moert_context_t ctx, const int32_t *table,
                       int32_t rows, int32_t cols, int32_t slot) {
  int32_t rank = moert_context_rank(ctx);
  for (int32_t r = 0; r < rows; ++r)
    for (int32_t c = 0; c < cols; ++c)
      if (table[r * cols + c] == rank) {
        moert_group_t group = NULL;
        moert_status_t status =
            moert_group_create(ctx, table + r * cols, cols, &group);
        if (status != MOERT_OK)
          return status;
        status = moert_context_keep_group(ctx, slot, group);
        if (status != MOERT_OK)
          moert_group_destroy(group);
        return status;
      }
  return MOERT_INVALID_ARGUMENT;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_MOERT_MODEL_H */
