/*===- runtime/moert.h - moe-mlir runtime C ABI ----------------*- C -*-===//
 *
 * The compiler <-> runtime contract. Compiled models (C++ emitted by
 * `moe-translate --moe-to-cpp`) call exactly these functions and nothing
 * else. The header is plain C so that any backend (CPU threads, CUDA + NCCL)
 * can sit behind it and no C++ exception ever crosses it.
 *
 * Conventions
 * - Every entry point returns moert_status_t. On failure, moert_last_error()
 *   returns a message (thread-local, valid until the next failing call on the
 *   same thread) naming what was wrong. Success does not clear it.
 * - Tensors are passed as moert_view_t: a buffer, an offset in *elements* of
 *   the view's dtype, and the dtype. A view with a NULL buffer is "absent"
 *   (used for optional operands such as biases). Shapes are passed as explicit
 *   extents; every tensor is dense row-major from its offset.
 * - Storage dtypes f32/f16/bf16 (and f8_e4m3/u8 for quantized weights,
 *   see moert_quantized_experts); all arithmetic is fp32 with fp32
 *   accumulation. A kernel converts its inputs to fp32 and rounds its outputs
 *   to the output view's dtype (round-to-nearest-even). Index tensors are i32.
 * - Weights use the torch.nn.Linear layout [out, in]; expert weights are
 *   stacked [E, out, in].
 * - Shapes: S tokens, H hidden, E experts, k choices per token, F FFN width,
 *   C capacity (rows per expert in the expert-major buffer).
 * - Output views must not alias input views unless a function says so.
 *
 *===----------------------------------------------------------------------===*/
#ifndef MOERT_MOERT_H
#define MOERT_MOERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*===--- Status -----------------------------------------------------------===*/

typedef enum moert_status {
  MOERT_OK = 0,
  MOERT_INVALID_ARGUMENT = 1, /* bad shape, dtype, attribute or handle */
  MOERT_OUT_OF_MEMORY = 2,
  MOERT_IO_ERROR = 3,     /* file missing, unreadable or truncated */
  MOERT_FORMAT_ERROR = 4, /* malformed file contents (e.g. header) */
  MOERT_NOT_FOUND = 5,    /* missing weight key */
  MOERT_UNSUPPORTED = 6,  /* dtype or backend not available */
  MOERT_ABORTED = 7,      /* another rank failed; this one gave up */
  MOERT_TIMEOUT = 8,      /* a collective waited past the world timeout */
  MOERT_INTERNAL = 9,     /* unexpected exception inside the runtime */
} moert_status_t;

/* Message of the last failing call on this thread ("" if none). */
const char *moert_last_error(void);
/* Stable name of a status code, e.g. "MOERT_NOT_FOUND". */
const char *moert_status_name(moert_status_t status);

/*===--- Data types and views ---------------------------------------------===*/

typedef enum moert_dtype {
  MOERT_F32 = 0,
  MOERT_F16 = 1,
  MOERT_BF16 = 2,
  MOERT_I32 = 3,
  MOERT_I64 = 4,
  /* Quantized weight storage only (moert_quantized_experts, weight loads of
     the same file dtype); no other call takes them. */
  MOERT_F8_E4M3 = 5, /* float8_e4m3fn: bias 7, no infinities, S.1111.111 NaN */
  MOERT_U8 = 6,      /* raw bytes: packed MXFP4 values, e8m0 exponents */
} moert_dtype_t;

/* Size in bytes of one element; 0 for an unknown dtype. */
size_t moert_dtype_size(moert_dtype_t dtype);

typedef struct moert_buffer_s *moert_buffer_t;

typedef struct moert_view {
  moert_buffer_t buffer; /* NULL: absent operand */
  int64_t offset;        /* in elements of dtype */
  moert_dtype_t dtype;
} moert_view_t;

static inline moert_view_t
moert_make_view(moert_buffer_t buffer, int64_t offset, moert_dtype_t dtype) {
  moert_view_t view;
  view.buffer = buffer;
  view.offset = offset;
  view.dtype = dtype;
  return view;
}

static inline moert_view_t moert_absent_view(void) {
  return moert_make_view((moert_buffer_t)0, 0, MOERT_F32);
}

/*===--- World, ranks, contexts -------------------------------------------===*/

typedef enum moert_backend {
  MOERT_BACKEND_CPU = 0,  /* ranks are threads of this process */
  MOERT_BACKEND_CUDA = 1, /* one process per GPU (see moert_world_create) */
} moert_backend_t;

typedef struct moert_world_desc {
  moert_backend_t backend;
  int32_t nodes;         /* mesh rows */
  int32_t gpus_per_node; /* mesh columns; world rank = node * gpus_per_node +
                            local index */
  /* A collective that waits longer than this fails with MOERT_TIMEOUT
     (<= 0: 60000 ms). A failing or exited peer ends waits at once. */
  int32_t collective_timeout_ms;
  /* MOERT_BACKEND_CPU: compute threads per rank, so ranks x threads = the
     cores to use (<= 0: MOERT_CPU_THREADS when set, else the cores this
     process may run on divided among the ranks, at least 1). Ignored by
     CUDA. */
  int32_t cpu_threads;
} moert_world_desc_t;

typedef struct moert_world_s *moert_world_t;
typedef struct moert_context_s *moert_context_t;

/* MOERT_BACKEND_CUDA: this process is one rank of a launch with one process
   per GPU. Rank, world size and local rank come from the launcher's
   environment: OpenMPI (OMPI_COMM_WORLD_*), torchrun (RANK, WORLD_SIZE,
   LOCAL_RANK, LOCAL_WORLD_SIZE) or Slurm (SLURM_PROCID, SLURM_NTASKS,
   SLURM_LOCALID); none set: a world of one rank. The world size must equal
   nodes * gpus_per_node and the local rank rank % gpus_per_node
   (MOERT_INVALID_ARGUMENT otherwise). The process selects device LOCAL_RANK
   (device 0 when it sees only one) and rank 0 sends the NCCL unique id to
   the others over a TCP rendezvous on MASTER_ADDR:MASTER_PORT (needed when
   the world has more than one rank; under torchrun, whose agent holds
   MASTER_PORT, the port after it; MOERT_RENDEZVOUS_PORT overrides both).
   A libmoert built without nvcc/NCCL, or a machine without a usable
   device, fails with MOERT_UNSUPPORTED. */
moert_status_t moert_world_create(const moert_world_desc_t *desc,
                                  moert_world_t *out_world);
void moert_world_destroy(moert_world_t world);
int32_t moert_world_size(moert_world_t world);
/* Compute threads per rank of a CPU world (0 for CUDA). */
int32_t moert_world_cpu_threads(moert_world_t world);

/* Body run once per rank. A non-OK return (or an exception thrown by C++
   code inside it) fails the whole run and aborts the peers' collectives. */
typedef moert_status_t (*moert_rank_fn_t)(moert_context_t ctx, void *user);

/* Runs fn on every rank (CPU backend: one thread per rank) and waits for all.
   Returns OK only if every rank returned OK; otherwise the status of the first
   rank that failed, with a message naming that rank and its error.
   MOERT_BACKEND_CUDA: runs fn once, for this process's rank, then waits for
   its device work; a failed or hung peer ends this rank's collectives with
   MOERT_ABORTED or MOERT_TIMEOUT (NCCL async-error polling, ncclCommAbort). */
moert_status_t moert_world_run(moert_world_t world, moert_rank_fn_t fn,
                               void *user);

int32_t moert_context_rank(moert_context_t ctx); /* world rank */
int32_t moert_context_world_size(moert_context_t ctx);
int32_t moert_context_node(moert_context_t ctx); /* rank / gpus_per_node */
int32_t
moert_context_local_rank(moert_context_t ctx); /* rank % gpus_per_node */

/*===--- Buffers (CPU: 64-byte aligned host memory; CUDA: device memory) -===*/
/* On CUDA, kernels run asynchronously on the rank's stream; upload and
   download return when the copy is done, and download (like every call that
   returns a host value) reports device-side errors of earlier calls, e.g. a
   routing entry outside the expert-major buffer. */

moert_status_t moert_buffer_alloc(moert_context_t ctx, size_t bytes,
                                  moert_buffer_t *out_buffer);
void moert_buffer_free(moert_context_t ctx, moert_buffer_t buffer);
size_t moert_buffer_size(moert_buffer_t buffer);
/* Copies count elements of view.dtype between host memory and a view. */
moert_status_t moert_buffer_upload(moert_context_t ctx, moert_view_t dst,
                                   const void *src, int64_t count);
moert_status_t moert_buffer_download(moert_context_t ctx, void *dst,
                                     moert_view_t src, int64_t count);
/* *out_address = the host address of view's first element where buffers
   are host memory (the CPU backend), for tools that work on the bytes in
   place (bench/cpu_layer flushes weights from the caches); the buffer keeps
   owning them. MOERT_UNSUPPORTED where buffers are device memory (CUDA). */
moert_status_t moert_buffer_host_address(moert_context_t ctx, moert_view_t view,
                                         void **out_address);
/* Sets count elements to value (converted to the view's dtype; NaN allowed,
   used to poison outputs in tests). */
moert_status_t moert_buffer_fill(moert_context_t ctx, moert_view_t dst,
                                 int64_t count, double value);

/* dst = src converted element-wise (any dtypes; f16/bf16 rounded to nearest
   even); count elements. */
moert_status_t moert_buffer_copy(moert_context_t ctx, moert_view_t src,
                                 moert_view_t dst, int64_t count);

/*===--- Router and gate --------------------------------------------------===*/

/* logits[S,E] (f32 view) = x[S,H] . wg[E,H]^T (+ bias[E] if present). */
moert_status_t moert_router(moert_context_t ctx, moert_view_t x,
                            moert_view_t wg, moert_view_t bias,
                            moert_view_t logits, int64_t tokens, int64_t hidden,
                            int64_t experts);

typedef enum moert_score_func {
  MOERT_SCORE_SOFTMAX = 0, /* max-subtracted softmax over the E experts */
  MOERT_SCORE_SIGMOID = 1,
  MOERT_SCORE_SPARSEMIXER = 2, /* PhiMoE (eval): scores = logits, top_k 2,
                                  weights in step 5 */
} moert_score_func_t;

typedef enum moert_group_score {
  MOERT_GROUP_SCORE_MAX = 0,      /* DeepSeek-V2: max of the group */
  MOERT_GROUP_SCORE_TOP2_SUM = 1, /* DeepSeek-V3: sum of the group's top 2 */
} moert_group_score_t;

typedef enum moert_gate_norm {
  MOERT_NORM_NONE = 0,
  MOERT_NORM_SELECTED = 1, /* w /= sum of the k selected + norm_epsilon */
  MOERT_NORM_KEPT = 2,     /* w /= max(sum of kept, FLT_EPSILON) */
  MOERT_NORM_SELECTED_CLAMPED = 3, /* w /= max(sum of the k selected,
                                      norm_epsilon) */
  MOERT_NORM_PNORM = 4, /* w /= (sum of |w|^norm_p over the k)^(1/norm_p) */
} moert_gate_norm_t;

typedef enum moert_drop_order {
  MOERT_DROP_CHOICE_MAJOR = 0, /* all first choices, then all second, ... */
  MOERT_DROP_TOKEN_MAJOR = 1,  /* all k choices of token 0, then token 1 */
  MOERT_DROP_PROBS = 2,        /* per expert keep the C highest scores */
} moert_drop_order_t;

typedef struct moert_gate_config {
  int32_t experts;
  int32_t top_k;
  moert_score_func_t score_func;
  int32_t n_group;    /* <= 1: no group limit */
  int32_t topk_group; /* groups kept when n_group > 1 */
  moert_group_score_t group_score;
  moert_gate_norm_t norm;
  float norm_epsilon; /* added to the denominator of SELECTED; the floor of
                         SELECTED_CLAMPED's */
  float routed_scaling_factor; /* final multiplier (1 for most models) */
  double capacity_factor;      /* 0: dropless (double: the compiler's f64) */
  int64_t min_capacity;
  moert_drop_order_t drop_order;
  /* Dropless only: > 0 fixes C at this bound (>= tokens: an expert gets a
     token at most once) instead of reading max count back to the host, so
     the gate can be captured in a CUDA graph; 0: C = max count. */
  int64_t static_capacity;
  float norm_p; /* the p of PNORM (> 0) */
  float jitter_eps; /* SPARSEMIXER's mask width (>= 0) */
} moert_gate_config_t;

/* Fills cfg with: softmax, no groups, NORM_NONE, eps 0, scale 1, dropless,
   min_capacity 0, token_major, static_capacity 0, norm_p 1, jitter_eps 0. */
void moert_gate_config_init(moert_gate_config_t *cfg, int32_t experts,
                            int32_t top_k);

/* Gate on fp32 logits[S,E], with optional fp32-convertible correction
   bias[E]. Per token s:
   1. scores = softmax(logits[s]) or sigmoid(logits[s]); SPARSEMIXER:
      scores = logits[s].
   2. sel = scores + correction_bias (selection only; absent: sel = scores;
      SPARSEMIXER takes none).
   3. n_group > 1: experts split into n_group contiguous groups; group score =
      max of sel (MAX) or sum of its two largest sel (TOP2_SUM); keep the
      topk_group best groups (ties: lower group index); sel = -inf elsewhere.
   4. ids[s,0..k) = top-k of sel, descending; ties: lower expert index.
   5. w[s,j] = scores[s, ids[s,j]] (unbiased). SPARSEMIXER (top_k 2, no
      groups): w[s,j] = 1 / sum of exp(l - t) over the logits l not masked,
      t = logits[s, ids[s,j]]; l is masked when (t - l) / max(|l|, t) >
      2 * jitter_eps, and for j = 1 also l of expert ids[s,0].
   6. Capacity, cf > 0: C = max(min_capacity, ceil(double(k*S) / E * cf)) on
      this rank's S. Slots per drop order: CHOICE_MAJOR: for j, for s:
      slot = count[e]++; TOKEN_MAJOR: for s, for j: the same; PROBS: per
      expert keep the C choices with the highest w from step 5 (ties: lower
      token index), slots 0.. in token order. slot >= C (or not kept) is a
      drop: slot = -1, weight 0. counts[e] = kept choices of e (<= C).
      Dropless, cf == 0: all kept, slots token-major, C = max_e counts[e]
      (with expert parallelism all-reduce C with MAX over the EP group:
      moert_all_reduce_i64), or C = static_capacity when that is > 0.
   7. NONE: w unchanged; SELECTED: w /= (sum_j w + norm_epsilon) over all k,
      then drops are zeroed; KEPT: drops zeroed, then w /= max(sum of kept,
      FLT_EPSILON). A zero denominator leaves the weights 0 (never NaN).
   8. w *= routed_scaling_factor.
   Outputs: ids[S,k] i32, weights[S,k] f32, slots[S,k] i32, counts[E] i32 and
   *capacity (host). */
moert_status_t moert_gate(moert_context_t ctx, const moert_gate_config_t *cfg,
                          moert_view_t logits, moert_view_t correction_bias,
                          int64_t tokens, moert_view_t ids,
                          moert_view_t weights, moert_view_t slots,
                          moert_view_t counts, int64_t *capacity);

/* The stages of moert_gate as separate calls (the unfused lowering; the
   same code, so the same results). scores[S,E] f32 is step 1;
   moert_gate_select is steps 2-5 (ids, unbiased weights); moert_gate_slots
   is step 6 (slots, counts, *capacity); moert_gate_normalize is steps 7-8 on
   weights in place. */
moert_status_t moert_gate_scores(moert_context_t ctx,
                                 const moert_gate_config_t *cfg,
                                 moert_view_t logits, int64_t tokens,
                                 moert_view_t scores);
moert_status_t moert_gate_select(moert_context_t ctx,
                                 const moert_gate_config_t *cfg,
                                 moert_view_t scores,
                                 moert_view_t correction_bias, int64_t tokens,
                                 moert_view_t ids, moert_view_t weights);
moert_status_t moert_gate_slots(moert_context_t ctx,
                                const moert_gate_config_t *cfg,
                                moert_view_t ids, moert_view_t weights,
                                int64_t tokens, moert_view_t slots,
                                moert_view_t counts, int64_t *capacity);
moert_status_t moert_gate_normalize(moert_context_t ctx,
                                    const moert_gate_config_t *cfg,
                                    moert_view_t slots, int64_t tokens,
                                    moert_view_t weights);

/*===--- Token permutation ------------------------------------------------===*/

/* buf[E,C,H] = 0; buf[ids[s,j], slots[s,j], :] = x[s,:] for every kept
   choice (slot >= 0). buf may have a different dtype from x. With weights
   [S,k] f32 present (a null view: absent), the row is x[s,:] * weights[s,j]
   computed in fp32 and rounded to buf's dtype (Llama 4 scales the experts'
   input, not their output). */
moert_status_t moert_dispatch(moert_context_t ctx, moert_view_t x,
                              moert_view_t ids, moert_view_t slots,
                              moert_view_t weights, moert_view_t buf,
                              int64_t tokens, int64_t hidden, int64_t top_k,
                              int64_t experts, int64_t capacity);

/* out[s,:] = addend[s,:] (if present, else 0)
              + sum_j weights[s,j] * y[ids[s,j], slots[s,j], :] over kept
   choices, accumulated in fp32. addend may alias out (fused residual).
   weights absent (a null view): every kept choice has weight 1 (the rows
   were weighted at dispatch). */
moert_status_t moert_combine(moert_context_t ctx, moert_view_t y,
                             moert_view_t ids, moert_view_t slots,
                             moert_view_t weights, moert_view_t addend,
                             moert_view_t out, int64_t tokens, int64_t hidden,
                             int64_t top_k, int64_t experts, int64_t capacity);

/* The combine with its epilogue in one pass, per token s in fp32:
     r = sum_j weights[s,j] * y[ids[s,j], slots[s,j], :] (as moert_combine);
     mlp_out present: r = r * c0 + mlp_out[s] * c1 with (c0, c1) =
       softmax(x[s,:] . wc[2,H]^T + bc[2]) (bc optional; moert_residual_mix);
     shared present: r += g * shared[s] with g = sigmoid(x[s,:] . w_sg[1,H]^T)
       when w_sg is present, else 1 (moert_shared_add);
     addend present: r += addend[s];
     out[s] = r.
   x is needed when wc or w_sg is present. out may alias addend and x (the
   layer input, updated in place). weights absent: weight 1, as in
   moert_combine. */
moert_status_t moert_fused_combine(
    moert_context_t ctx, moert_view_t y, moert_view_t ids, moert_view_t slots,
    moert_view_t weights, moert_view_t mlp_out, moert_view_t wc,
    moert_view_t bc, moert_view_t shared, moert_view_t w_sg, moert_view_t x,
    moert_view_t addend, moert_view_t out, int64_t tokens, int64_t hidden,
    int64_t top_k, int64_t experts, int64_t capacity);

/*===--- FFN: routed experts and dense ------------------------------------===*/

typedef enum moert_ffn_kind {
  MOERT_FFN_GATED = 0, /* down(act(x.Wgate^T) * (x.Wup^T)): SwiGLU family */
  MOERT_FFN_PLAIN = 1, /* act(x.W1^T + b1).W2^T + b2: DeepSpeed GPT */
} moert_ffn_kind_t;

typedef enum moert_activation {
  MOERT_ACT_SILU = 0,
  MOERT_ACT_GELU = 1,      /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
  MOERT_ACT_GELU_TANH = 2, /* tanh approximation */
  MOERT_ACT_RELU = 3,
  /* gpt-oss's clamped SwiGLU: a gated combination with parameters, run by
     moert_swiglu_clamped only; the calls above and below refuse it. */
  MOERT_ACT_SWIGLU_CLAMPED = 4,
} moert_activation_t;

/* Weights of one FFN; for moert_experts each is stacked over experts [E,...].
   With expert slicing (tensor parallel over F), a rank holds an F-slice:
   w_gate/w_up/w1 rows [f0,f1), w_down/w2 columns [f0,f1), b1 [f0,f1), and
   `ffn` is the slice width. The partial outputs are summed with
   moert_all_reduce(SUM) over the slicing group; exactly one slice (by
   convention the group's first member) passes b2, the others pass an absent
   b2, so the sum adds it once. */
typedef struct moert_ffn_desc {
  moert_ffn_kind_t kind;
  moert_activation_t activation;
  int64_t hidden;      /* H */
  int64_t ffn;         /* F (local slice width) */
  moert_view_t w_gate; /* GATED: [F,H]; PLAIN: W1 [F,H] */
  moert_view_t w_up;   /* GATED: [F,H]; PLAIN: absent */
  moert_view_t w_down; /* GATED: [H,F]; PLAIN: W2 [H,F] */
  moert_view_t b1;     /* PLAIN only, optional [F] */
  moert_view_t b2;     /* PLAIN only, optional [H] */
} moert_ffn_desc_t;

/* Grouped FFN over the expert-major buffer in[E, C, H] -> out[E, C, H].
   Each expert's capacity is split into `blocks` equal blocks of C/blocks rows;
   rows[E, blocks] (i32, optional) says how many leading rows of each block
   hold tokens: only those are computed, the remaining rows of out are set to
   0 (absent rows: every row is computed). blocks = 1 with rows = the gate's
   counts is the single-rank case; after an all_to_all to_experts over G ranks
   use blocks = G and rows = the counts exchanged the same way
   (moert_all_to_all with capacity 1, hidden 1 turns counts[E] into
   [E_local, G]). The hidden activations act(x W_gate) * (x W_up) (or
   act(x W1 + b1)) are fp32, rounded once to bf16 before bf16 w_down, as
   transformers stores them. */
moert_status_t moert_experts(moert_context_t ctx, const moert_ffn_desc_t *ffn,
                             moert_view_t in, moert_view_t out,
                             moert_view_t rows, int64_t experts,
                             int64_t capacity, int64_t blocks);

/* The stages of a GATED moert_experts, which runs them in sequence (through
   fp32 intermediates, so the stage calls with f32 [E,C,F] buffers give its
   outputs exactly): h = linear(in, w_gate), u = linear(in, w_up),
   h = act(h), a = h * u (a in w_down's dtype when that is bf16, else f32),
   out = linear(a, w_down).
   moert_experts_linear: out[E,C,n] = in[E,C,k] . w[E,n,k]^T per expert over
   the rows `rows` selects (as in moert_experts); other rows of out are 0. */
moert_status_t moert_experts_linear(moert_context_t ctx, moert_view_t w,
                                    moert_view_t in, moert_view_t out,
                                    moert_view_t rows, int64_t experts,
                                    int64_t capacity, int64_t blocks, int64_t n,
                                    int64_t k);

/* out = act(x) over count elements; out may alias x. */
moert_status_t moert_activation(moert_context_t ctx,
                                moert_activation_t activation, moert_view_t x,
                                moert_view_t out, int64_t count);

/* out = a * b over count elements; out may alias a or b. */
moert_status_t moert_multiply(moert_context_t ctx, moert_view_t a,
                              moert_view_t b, moert_view_t out, int64_t count);

/* out = swiglu_clamped(gate, up) over count elements, gpt-oss's gated
   combination: g = min(gate, limit), u = clamp(up, -limit, limit),
   out = (u + 1) * g * sigmoid(alpha * g). out may alias gate or up.
   alpha and limit must be finite and > 0. */
moert_status_t moert_swiglu_clamped(moert_context_t ctx, moert_view_t gate,
                                    moert_view_t up, moert_view_t out,
                                    int64_t count, float alpha, float limit);

/* Per-expert bias of a stage of a gated FFN over the expert-major buffer:
   out[e,c,:] = x[e,c,:] + bias[e,:] (bias [E,n]) over the rows `rows`
   selects (as in moert_experts); the other rows of out are x's. out may
   alias x. */
moert_status_t moert_experts_bias_add(moert_context_t ctx, moert_view_t bias,
                                      moert_view_t x, moert_view_t out,
                                      moert_view_t rows, int64_t experts,
                                      int64_t capacity, int64_t blocks,
                                      int64_t n);

/* A GATED FFN in the packed form moe-fuse-kernels produces: w_gate_up holds
   each expert's gate rows [0,F) followed by its up rows [F,2F) (packed when
   the weights load: moert_weight_request_t.dst_expert_stride), w_down is
   [H,F]. For moert_fused_experts the weights are stacked [E,2F,H] and
   [E,H,F]; for a folded shared expert they are [2F,H] and [H,F]. */
typedef struct moert_packed_ffn_desc {
  moert_activation_t activation;
  int64_t hidden;         /* H */
  int64_t ffn;            /* F (local slice width) */
  moert_view_t w_gate_up; /* [(E,) 2F, H] */
  moert_view_t w_down;    /* [(E,) H, F] */
} moert_packed_ffn_desc_t;

/* moert_experts for a packed GATED FFN, fused: one grouped GEMM gives
   [gate | up] per row, act(gate) * up is formed in one pass, then one grouped
   GEMM for down. in/out/rows/experts/capacity/blocks as moert_experts.
   shared != NULL folds shared experts into the same grouped GEMMs as extra
   problems (SGLang-style; their tokens are this rank's, never exchanged):
   shared_out[tokens,H] = FFN_shared(shared_x[tokens,H]); shared_out must not
   alias shared_x. shared == NULL: shared_x/shared_out absent, tokens 0.
   Results equal moert_experts (+ moert_dense_ffn) up to fp32 rounding. */
moert_status_t moert_fused_experts(moert_context_t ctx,
                                   const moert_packed_ffn_desc_t *ffn,
                                   moert_view_t in, moert_view_t out,
                                   moert_view_t rows, int64_t experts,
                                   int64_t capacity, int64_t blocks,
                                   const moert_packed_ffn_desc_t *shared,
                                   moert_view_t shared_x,
                                   moert_view_t shared_out, int64_t tokens);

/* The same FFN on x[S,H] with unstacked weights (shared experts, PR-MoE
   residual MLP, dense layers). */
moert_status_t moert_dense_ffn(moert_context_t ctx, const moert_ffn_desc_t *ffn,
                               moert_view_t x, moert_view_t out,
                               int64_t tokens);

/* Quantized weights, dequantized inside the GEMM tile (never as a whole
   tensor), so they stay quantized in memory. A weight [rows, cols] is
   `data` plus `scales`:
   - FP8_E4M3_BLOCK (DeepSeek-V3, Qwen3-FP8 `weight_block_size`): data
     f8_e4m3 [rows, cols], scales f32 [ceil(rows / block_rows),
     ceil(cols / block_cols)] (the checkpoint's weight_scale_inv);
     w[r, c] = float(data[r, c]) * scales[r / block_rows, c / block_cols]
     in fp32. Edge blocks may be partial.
   - MXFP4 (OCP microscaling, gpt-oss `*_blocks`/`*_scales`): block_rows 1,
     block_cols 32, cols a multiple of 32; data u8 [rows, cols / 2], two
     e2m1 values a byte, the even column in the low nibble; scales u8 e8m0
     [rows, cols / 32]; w[r, c] = e2m1 * 2^(scales[r, c / 32] - 127)
     (255: NaN).
   Stacked over experts, each expert's data and scales follow the previous
   expert's, dense. */
typedef enum moert_weight_format {
  MOERT_WEIGHTS_FP8_E4M3_BLOCK = 0,
  MOERT_WEIGHTS_MXFP4 = 1,
} moert_weight_format_t;

typedef struct moert_quantized_weight {
  moert_view_t data;
  moert_view_t scales;
} moert_quantized_weight_t;

/* A GATED FFN with quantized gate [F,H], up [F,H] and down [H,F] (stacked
   [E,...] for E experts). */
typedef struct moert_quantized_ffn_desc {
  moert_weight_format_t format;
  int64_t block_rows, block_cols;
  moert_activation_t activation;
  int64_t hidden; /* H */
  int64_t ffn;    /* F */
  moert_quantized_weight_t gate, up, down;
} moert_quantized_ffn_desc_t;

/* moert_experts for a quantized GATED FFN: out = down(act(in . gate^T) *
   (in . up^T)) per expert, fp32 accumulation; in/out/rows/experts/capacity/
   blocks as moert_experts. A dense or shared FFN on x[S,H] is the call with
   experts 1, capacity S, blocks 1 and absent rows. Results equal
   moert_experts on the dequantized f32 weights up to fp32 rounding (a CPU
   with AVX-512-BF16 reads fp8 weights in place, their products in bf16: an
   input that is not bf16 goes in as two bf16 terms, good to 2^-17). */
moert_status_t moert_quantized_experts(moert_context_t ctx,
                                       const moert_quantized_ffn_desc_t *ffn,
                                       moert_view_t in, moert_view_t out,
                                       moert_view_t rows, int64_t experts,
                                       int64_t capacity, int64_t blocks);

/* moert_experts_linear with a quantized w (data [E,n,k] and scales stacked
   over experts as for moert_quantized_ffn_desc_t, block_rows x block_cols
   blocks; mxfp4: 1 x 32 and k a multiple of 32): the GEMM stage of gated
   experts whose biases or swiglu_clamped keep them staged (gpt-oss's MXFP4
   experts). out[E,C,n] = in[E,C,k] . w^T over the rows `rows` selects; other
   rows of out are 0. Equals moert_experts_linear on the dequantized f32
   weights up to fp32 rounding. */
moert_status_t moert_quantized_experts_linear(
    moert_context_t ctx, moert_weight_format_t format, int64_t block_rows,
    int64_t block_cols, moert_view_t w, moert_view_t w_scales, moert_view_t in,
    moert_view_t out, moert_view_t rows, int64_t experts, int64_t capacity,
    int64_t blocks, int64_t n, int64_t k);

/*===--- Elementwise mixes ------------------------------------------------===*/

/* PR-MoE residual: coef[s,:] = softmax(x[s,:] . wc[2,H]^T + bc[2]);
   out = moe_out * coef[:,0] + mlp_out * coef[:,1]. bc optional. */
moert_status_t moert_residual_mix(moert_context_t ctx, moert_view_t x,
                                  moert_view_t wc, moert_view_t bc,
                                  moert_view_t moe_out, moert_view_t mlp_out,
                                  moert_view_t out, int64_t tokens,
                                  int64_t hidden);

/* Shared experts: out = routed + shared (w_sg absent: DeepSeek), or
   out = routed + sigmoid(x[s,:] . w_sg[1,H]^T) * shared (Qwen2-MoE).
   out may alias routed. */
moert_status_t moert_shared_add(moert_context_t ctx, moert_view_t routed,
                                moert_view_t shared, moert_view_t x,
                                moert_view_t w_sg, moert_view_t out,
                                int64_t tokens, int64_t hidden);

/* out = a + b over count elements (the layer residual x <- x + layer(x)).
   out may alias a or b. */
moert_status_t moert_add(moert_context_t ctx, moert_view_t a, moert_view_t b,
                         moert_view_t out, int64_t count);

/*===--- Norms ------------------------------------------------------------===*/

/* Per token of x [tokens, hidden]: y = x * rsqrt(mean(x^2) + epsilon) in
   fp32, rounded to x's dtype, then out = weight [hidden] * y (the Hugging
   Face RMSNorm of Llama, Mixtral, Qwen and DeepSeek). out may alias x. */
moert_status_t moert_rms_norm(moert_context_t ctx, moert_view_t x,
                              moert_view_t weight, moert_view_t out,
                              int64_t tokens, int64_t hidden, float epsilon);

/* Per token of x [tokens, hidden]: out = (x - mean) * rsqrt(var + epsilon) *
   weight [hidden] + bias [hidden] (biased variance), in fp32 and rounded once
   to out's dtype (torch.nn.LayerNorm: the Megatron-DeepSpeed GPT). bias may
   be absent. out may alias x. */
moert_status_t moert_layer_norm(moert_context_t ctx, moert_view_t x,
                                moert_view_t weight, moert_view_t bias,
                                moert_view_t out, int64_t tokens,
                                int64_t hidden, float epsilon);

/* out[s, :] = x[s, :] + bias [hidden] over tokens rows: a projection's bias
   added once after its tensor-parallel partial outputs are summed. out may
   alias x. */
moert_status_t moert_bias_add(moert_context_t ctx, moert_view_t x,
                              moert_view_t bias, moert_view_t out,
                              int64_t tokens, int64_t hidden);

/* out[i] = min(max(x[i], -limit), limit) over count elements (DBRX's
   clip_qkv on the q, k and v projections); limit finite and > 0; a NaN
   stays NaN. out may alias x. */
moert_status_t moert_clamp(moert_context_t ctx, moert_view_t x,
                           moert_view_t out, int64_t count, float limit);

/* out[i] = x[i] * factor over count elements, in fp32 and rounded once to
   out's dtype (Granite's embedding_multiplier on the embeddings,
   residual_multiplier on the attention's output, 1 / logits_scaling on the
   logits); factor finite. out may alias x. */
moert_status_t moert_scale(moert_context_t ctx, moert_view_t x,
                           moert_view_t out, int64_t count, float factor);

/*===--- The decoder around the FFN stack ---------------------------------===*/

/* out[S, n] = x[S, k] . w[n, k]^T (+ bias[n]), fp32 accumulation, rounded to
   out's dtype (f32 for logits). Projections, the LM head. */
moert_status_t moert_linear(moert_context_t ctx, moert_view_t x, moert_view_t w,
                            moert_view_t bias, moert_view_t out, int64_t tokens,
                            int64_t n, int64_t k);

/* out[s] = table[ids[s]] (table [vocab, hidden]); an id outside
   [0, vocab) fails with MOERT_INVALID_ARGUMENT. */
moert_status_t moert_embedding(moert_context_t ctx, moert_view_t ids,
                               moert_view_t table, moert_view_t out,
                               int64_t tokens, int64_t vocab, int64_t hidden);

typedef enum moert_rope_type {
  MOERT_ROPE_DEFAULT = 0,
  MOERT_ROPE_LINEAR = 1,   /* inv_freq / factor */
  MOERT_ROPE_LLAMA3 = 2,   /* Llama 3.1 wavelength-dependent scaling */
  MOERT_ROPE_YARN = 3,     /* YaRN ramp; cos, sin times attention_factor */
  MOERT_ROPE_LONGROPE = 4, /* Phi-3 LongRoPE: per-pair factors, short/long */
} moert_rope_type_t;

/* Most dimension pairs a longrope factor list holds (head_dim <= 512). */
#define MOERT_ROPE_MAX_FACTORS 256

/* Hugging Face rope_theta / rope_scaling (ROPE_INIT_FUNCTIONS); formulas in
   runtime/common/Rope.h. */
typedef struct moert_rope_config {
  moert_rope_type_t type;
  double theta, factor;
  double low_freq_factor, high_freq_factor; /* llama3 */
  double beta_fast, beta_slow;              /* yarn */
  double attention_factor;                  /* multiplies cos and sin */
  int64_t original_max_position;            /* llama3, yarn */
  int32_t truncate;                         /* yarn: round the ramp ends */
  /* moert_rope: the leading dims of a head that rotate (even; 0: all of
     them), transformers' head_dim * partial_rotary_factor (GLM-4.5); the
     frequencies are over these dims and the rest pass unchanged. Latent
     attention takes 0 only (its rope_dim says it). */
  int64_t rotary_dim;
  /* moert_rope: rotate dims (2i, 2i + 1) together (ERNIE-4.5's interleaved
     pairs) instead of rotate_half's (i, i + R / 2); 0 or 1. Latent
     attention takes 0 (its rope dims are always interleaved). */
  int32_t interleaved;
  /* longrope: inv_freq[i] = 1 / (factor[i] * theta^(2i / head_dim)) and cos,
     sin times mscale (in place of attention_factor), with the long_ list when
     the call's largest position + 1 exceeds original_max_position (as
     transformers picks per forward over its position_ids), else the short_
     one. The lists hold head_dim / 2 entries; arrays so that the config
     stays one value a kernel can take. */
  float short_factor[MOERT_ROPE_MAX_FACTORS];
  float long_factor[MOERT_ROPE_MAX_FACTORS];
  double short_mscale, long_mscale;
} moert_rope_config_t;

/* In place on x [tokens, heads, head_dim]: rotate_half rotary embedding at
   positions[tokens] (i32) over the first R = cfg->rotary_dim (0: head_dim)
   dims of each head: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s) with
   c, s = cos, sin(position * inv_freq[i]) * attention_factor, x1 = x[i],
   x2 = x[i + R / 2] (cfg->interleaved: x1 = x[2i], x2 = x[2i + 1]); dims
   R to head_dim are left as they are. */
moert_status_t moert_rope(moert_context_t ctx, const moert_rope_config_t *cfg,
                          moert_view_t x, moert_view_t positions,
                          int64_t tokens, int64_t heads, int64_t head_dim);

/* A KV cache is one view of 2 * max_batch * max_seq * kv_heads * head_dim
   elements: keys [max_batch, max_seq, kv_heads, head_dim], then values of
   the same shape. Token s belongs to sequence sequences[s] at position
   positions[s] (both i32, in [0, max_batch) and [0, max_seq); else
   MOERT_INVALID_ARGUMENT). */

/* Stores k, v [tokens, kv_heads, head_dim] at (sequence, position). */
moert_status_t moert_kv_append(moert_context_t ctx, moert_view_t k,
                               moert_view_t v, moert_view_t cache,
                               moert_view_t sequences, moert_view_t positions,
                               int64_t tokens, int64_t kv_heads,
                               int64_t head_dim, int64_t max_batch,
                               int64_t max_seq);

/* Causal attention over the cache: for token s and head h (kv head
   h / (heads / kv_heads)), out[s, h] = softmax_t(scale * q[s, h] .
   K[seq, t]) . V[seq, t] over t in [first, positions[s]] of its sequence,
   in fp32 with the row maximum subtracted. first = 0, or with window > 0
   (a sliding window, transformers' kv > q - window) max(0, positions[s] -
   window + 1): the token and the window - 1 before it. sinks (optional,
   [heads], f32 or the model's dtype; gpt-oss's attention sinks) adds
   exp(sinks[h]) to the softmax denominator as a logit with no value (the
   maximum taken over it too). q [tokens, heads, head_dim], out the same
   shape. Prefill (a run of positions) and decode (one token per sequence)
   are the same call; the cache must hold the earlier positions. */
moert_status_t moert_attention(moert_context_t ctx, moert_view_t q,
                               moert_view_t cache, moert_view_t sequences,
                               moert_view_t positions, moert_view_t sinks,
                               moert_view_t out, int64_t tokens, int64_t heads,
                               int64_t kv_heads, int64_t head_dim,
                               int64_t max_batch, int64_t max_seq, float scale,
                               int64_t window);

/* ids[s] (i32) = argmax of logits[s, :vocab] (f32); ties go to the lower
   index; a NaN logit fails with MOERT_INVALID_ARGUMENT. */
moert_status_t moert_argmax(moert_context_t ctx, moert_view_t logits,
                            moert_view_t ids, int64_t tokens, int64_t vocab);

/*===--- DeepSeek multi-head latent attention (MLA) -----------------------===*/

/* A latent cache is one view of max_batch * max_seq * (rank + rope_dim)
   elements: per (sequence, position) the compressed KV c (rank =
   kv_lora_rank values, RMS-normalised), then the rotated key k_pe shared by
   every head (rope_dim values). Sequences and positions as for the KV
   cache. The rotary embedding of both calls pairs neighbouring dimensions:
   (x[2i], x[2i+1]) -> (x0 c - x1 s, x1 c + x0 s) with c, s = cos,
   sin(position * inv_freq[i]) * attention_factor over rope_dim (DeepSeek's
   layout; rope_dim even). */

/* Per token of kv [tokens, rank + rope_dim] (x . kv_a_proj_with_mqa^T):
   c = RMSNorm(kv[:rank]) * norm [rank] (moert_rms_norm's rounding), k_pe =
   rope(kv[rank:]) at positions[s]; both stored at (sequences[s],
   positions[s]). */
moert_status_t
moert_latent_append(moert_context_t ctx, const moert_rope_config_t *cfg,
                    moert_view_t kv, moert_view_t norm, moert_view_t cache,
                    moert_view_t sequences, moert_view_t positions,
                    int64_t tokens, int64_t rank, int64_t rope_dim,
                    int64_t max_batch, int64_t max_seq, float epsilon);

/* Causal attention over the latent cache. q [tokens,
   heads, nope_dim + rope_dim] (q_nope, then q_pe not yet rotated); kv_b
   [heads, nope_dim + v_dim, rank] (kv_b_proj: per head W_UK [nope_dim,
   rank], then W_UV [v_dim, rank]). For token s and head h: q_lat =
   W_UK[h]^T q_nope, q_pe rotated at positions[s], score_t = scale *
   (q_lat . c_t + q_pe . k_pe_t) over t in [0, positions[s]] of its
   sequence, p = softmax (row maximum subtracted), out[s, h] = W_UV[h] .
   sum_t p_t c_t [tokens, heads, v_dim]; fp32 throughout. Equals attention
   with per-head keys [W_UK c_t, k_pe_t] and values W_UV c_t, which a
   backend forms only where that is less work (the CPU for prompt-sized
   calls). q is not modified. */
moert_status_t moert_latent_attention(
    moert_context_t ctx, const moert_rope_config_t *cfg, moert_view_t q,
    moert_view_t kv_b, moert_view_t cache, moert_view_t sequences,
    moert_view_t positions, moert_view_t out, int64_t tokens, int64_t heads,
    int64_t nope_dim, int64_t rope_dim, int64_t v_dim, int64_t rank,
    int64_t max_batch, int64_t max_seq, float scale);

/*===--- Rank groups and collectives --------------------------------------===*/

typedef struct moert_group_s *moert_group_t;

/* A group of world ranks; member i is ranks[i]. Every member creates it with
   the same list. The calling rank must be in the list. MOERT_BACKEND_CUDA:
   an ncclCommSplit of the world, so every rank of the world calls
   moert_group_create at the same point, the lists of that call partitioning
   the world (e.g. all expert-parallel groups at once). */
moert_status_t moert_group_create(moert_context_t ctx, const int32_t *ranks,
                                  int32_t count, moert_group_t *out_group);
void moert_group_destroy(moert_group_t group);
int32_t moert_group_size(moert_group_t group);

/* Groups kept by a context under small slot numbers: moe_model_init creates
   a model's groups once and keeps them, each step looks them up, so a step
   creates none (on CUDA creating a group is collective over the world and
   cannot be captured in a graph). The context owns a kept group (do not
   destroy it) until the rank's body returns from moert_world_run. Keeping
   a group in an occupied slot destroys the one kept there. */
moert_status_t moert_context_keep_group(moert_context_t ctx, int32_t slot,
                                        moert_group_t group);
/* MOERT_INVALID_ARGUMENT when nothing is kept in `slot`. */
moert_status_t moert_context_group(moert_context_t ctx, int32_t slot,
                                   moert_group_t *out_group);
int32_t moert_group_member(moert_group_t group); /* caller's index */

moert_status_t moert_barrier(moert_context_t ctx, moert_group_t group);

typedef enum moert_reduce_op {
  MOERT_REDUCE_SUM = 0, /* fp32 accumulation in member order */
  MOERT_REDUCE_MAX = 1,
} moert_reduce_op_t;

/* recv = reduce over members of send, count elements. send may equal recv
   (in place). Any dtype. */
moert_status_t moert_all_reduce(moert_context_t ctx, moert_group_t group,
                                moert_reduce_op_t op, moert_view_t send,
                                moert_view_t recv, int64_t count);
/* recv[G*count] = the members' send[count] concatenated in member order
   (tensor-parallel dense MLPs gather the group's tokens). send and recv must
   not overlap; same dtype. */
moert_status_t moert_all_gather(moert_context_t ctx, moert_group_t group,
                                moert_view_t send, moert_view_t recv,
                                int64_t count);
/* recv[count] = sum over members of their send[member*count, +count): each
   member gets its own block of the summed send[G*count], fp32 accumulation in
   member order (the inverse of moert_all_gather for partial sums). send and
   recv must not overlap; same dtype. */
moert_status_t moert_reduce_scatter(moert_context_t ctx, moert_group_t group,
                                    moert_view_t send, moert_view_t recv,
                                    int64_t count);
/* Duplicate-token dropping (DeepSpeed-TED): the members hold the same
   *tokens rows of x [*tokens, hidden]; member m's share is the rows
   [m*c, min(*tokens, (m+1)*c)) with c = ceil(*tokens / G), copied to share.
   *tokens becomes the share's row count (0 for members past the end).
   moert_all_gather of c * hidden elements per member restores the rows in
   order at the front of its recv. */
moert_status_t moert_token_share(moert_context_t ctx, moert_group_t group,
                                 moert_view_t x, moert_view_t share,
                                 int64_t hidden, int64_t *tokens);
/* The same as moert_all_reduce on one host scalar (dropless capacity). */
moert_status_t moert_all_reduce_i64(moert_context_t ctx, moert_group_t group,
                                    moert_reduce_op_t op, int64_t *value);

typedef enum moert_a2a_direction {
  /* send [E, C, H] with E = G * E_local; experts [q*E_local, (q+1)*E_local)
     go to member q; recv [E_local, G*C, H] with member p's rows at
     [:, p*C:(p+1)*C, :]. */
  MOERT_A2A_TO_EXPERTS = 0,
  /* The exact inverse: send [E_local, G*C, H] -> recv [E, C, H]. */
  MOERT_A2A_FROM_EXPERTS = 1,
} moert_a2a_direction_t;

typedef enum moert_a2a_algorithm {
  MOERT_A2A_FLAT = 0,
  /* Two stages (DeepSpeed-MoE / Tutel 2D): intra-node exchange, layout
     transform, inter-node exchange among ranks with the same local index.
     Same bytes as FLAT. The group must span whole nodes evenly: members
     sorted by node, the same number of members on each node. */
  MOERT_A2A_HIERARCHICAL = 1,
} moert_a2a_algorithm_t;

/* Expert-major all-to-all over the group (G members); send and recv must not
   overlap. Both views have the same dtype. */
moert_status_t moert_all_to_all(moert_context_t ctx, moert_group_t group,
                                moert_a2a_direction_t direction,
                                moert_a2a_algorithm_t algorithm,
                                moert_view_t send, moert_view_t recv,
                                int64_t experts_local, int64_t capacity,
                                int64_t hidden);

/* The same exchange with each expert's FFN sliced over `slices` consecutive
   members (expert slicing, tensor parallel over F): the group holds
   EP = G / slices expert shards and member q holds experts
   [(q / slices) * E_local, +E_local). TO_EXPERTS: send [EP * E_local, C, H]
   -> recv [E_local, G * C, H]; every member sends its rows of an expert to
   each of its `slices` holders, member p's rows at [:, p*C:(p+1)*C, :].
   FROM_EXPERTS: send [E_local, G * C, H] -> recv [EP * E_local, C, H], the
   partial outputs of the `slices` holders summed in fp32 in member order
   (float dtypes only). slices = 1 is moert_all_to_all. */
moert_status_t moert_all_to_all_sliced(moert_context_t ctx, moert_group_t group,
                                       moert_a2a_direction_t direction,
                                       moert_a2a_algorithm_t algorithm,
                                       moert_view_t send, moert_view_t recv,
                                       int64_t experts_local, int64_t capacity,
                                       int64_t hidden, int64_t slices);

/*===--- Weights (safetensors) --------------------------------------------===*/

typedef struct moert_weights_s *moert_weights_t;

/* Opens a checkpoint: a .safetensors file, a sharded checkpoint's
   model.safetensors.index.json, or a directory holding either. Maps every
   file and validates its header, and that every tensor the index lists is
   in its shard; errors name the file, the shard and the tensor. */
moert_status_t moert_weights_open(const char *path, moert_weights_t *out);
void moert_weights_close(moert_weights_t weights);

/* What loads have read so far (callable while other threads load). */
typedef struct moert_weights_stats {
  int64_t files;      /* safetensors files of the checkpoint */
  int64_t files_read; /* of them, those a load has read from */
  int64_t bytes;      /* tensor data in the files */
  int64_t bytes_read; /* tensor data loads have read (a box counts its size) */
} moert_weights_stats_t;
moert_status_t moert_weights_stats(moert_weights_t weights,
                                   moert_weights_stats_t *out);

/* What to load. key is a plain tensor name, or a per-expert pattern
   containing "{e}" (e.g. "model.layers.3.mlp.experts.{e}.down_proj.weight")
   for which experts [expert_begin, expert_end) are stacked. shape/rank is the
   shape the caller expects for one tensor (checked); begin/end select a box of
   it (end[d] = 0 means the full extent), e.g. an F-slice for expert slicing.
   The destination receives [experts?, end0-begin0, end1-begin1, ...] dense,
   converted from the file's F32/F16/BF16 to the view's dtype. F8_E4M3 and
   U8 tensors (quantized weights and their e8m0 scales) load only into a
   view of the same dtype, unconverted. */
typedef struct moert_weight_request {
  const char *key;
  int64_t expert_begin;
  int64_t expert_end;
  int32_t rank; /* 1..4 */
  int64_t shape[4];
  int64_t begin[4];
  int64_t end[4];
  /* Elements between consecutive experts in dst; 0: dense (the box size).
     A larger stride interleaves tensors, e.g. gate and up into packed
     [E, 2F, H] (load up at offset F*H with stride 2F*H). */
  int64_t dst_expert_stride;
} moert_weight_request_t;

/* Fills a request for the whole tensor `key` of the given shape. */
void moert_weight_request_init(moert_weight_request_t *req, const char *key,
                               int32_t rank, const int64_t *shape);

moert_status_t moert_weights_load(moert_context_t ctx, moert_weights_t weights,
                                  const moert_weight_request_t *req,
                                  moert_view_t dst);

/* Where each expert's tensor lies in a tensor that stores every expert's
   projection fused. `req->key` (without "{e}") names that tensor, of shape
   shape[0..rank), and element (i_0, ..., i_{req->rank - 1}) of expert e's
   tensor of req->shape is its element
     offset + e * expert_stride + sum_d i_d * strides[d]
   (row-major, all >= 0), for e in [req->expert_begin, req->expert_end).
   begin/end and dst_expert_stride are as for moert_weights_load. For gate
   (part p = 0) or up (p = 1) of [F, H]:
     [E, 2F, H] (gate rows, then up):  offset p*F*H, expert 2F*H, {H, 1}
     [E, H, 2F] interleaved (gpt-oss): offset p,     expert 2F*H, {2, 2F}
     [E, H, 2F] concatenated (llama4): offset p*F,   expert 2F*H, {1, 2F}
     [E*F, H] (dbrx w1 / v1):          offset 0,     expert F*H,  {H, 1}
   and dbrx's down [H, F] from w2 [E*F, H]: offset 0, expert F*H, {1, H}.
   The box is read from the file straight into dst, an expert at a time:
   nothing copies the whole fused tensor. */
typedef struct moert_fused_view {
  int32_t rank; /* of the fused tensor, 1..4 */
  int64_t shape[4];
  int64_t offset;
  int64_t expert_stride;
  int64_t strides[4]; /* one per dimension of req->shape */
} moert_fused_view_t;

moert_status_t moert_weights_load_fused(moert_context_t ctx,
                                        moert_weights_t weights,
                                        const moert_weight_request_t *req,
                                        const moert_fused_view_t *fused,
                                        moert_view_t dst);

/*===--- Captured steps (CUDA graphs) -------------------------------------===*/

/* A step recorded once and replayed: for decode-size steps, where launching
   the step's many small kernels costs more than running them. Selected per
   run (moe-run / moert-run --cuda-graphs); see docs/CompiledModel.md. */
typedef struct moert_graph_s *moert_graph_t;

/* Records the device work that fn(ctx, user) enqueues on the context's stream
   (stream capture, then instantiation) without executing it. A replay reads
   and writes the same buffers at the same offsets, so they must stay
   allocated until moert_graph_destroy, and every size (tokens, capacity) is
   the one seen at capture. Inside fn no call may need a device value on the
   host or a host-side synchronisation: moert_buffer_download,
   moert_all_reduce_i64, moert_gate with dropless capacity
   (capacity_factor 0), moert_gate_slots, moert_group_create (use kept
   groups: moert_context_group), buffer alloc/upload, weights_load, and any
   call whose device scratch would have to grow (capture after one direct
   run at the same sizes); such a call fails with
   MOERT_UNSUPPORTED and the capture is abandoned. Collectives on existing
   groups are captured, so every rank of a group captures at the same point.
   The CPU backend has nothing to capture: MOERT_UNSUPPORTED. */
moert_status_t moert_graph_capture(moert_context_t ctx, moert_rank_fn_t fn,
                                   void *user, moert_graph_t *out_graph);
/* Launches the graph on the context's stream and returns when it is done. */
moert_status_t moert_graph_replay(moert_context_t ctx, moert_graph_t graph);
/* NULL is ignored. */
void moert_graph_destroy(moert_context_t ctx, moert_graph_t graph);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_MOERT_H */
