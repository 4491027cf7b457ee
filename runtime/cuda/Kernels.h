//===- runtime/cuda/Kernels.h - CUDA kernels of moert.h ---------*- C++ -*-===//
//
// The kernels of runtime/moert.h on device pointers and a stream, with the
// semantics written there (reference: runtime/cpu). Errors are moert::Error;
// the C entry points reach these through the backend (Backend.cpp) inside
// runtime/api's guard(). All pointers are device memory unless named host.
//
// Numerics: fp32 math and accumulation, outputs rounded once to their dtype,
// as on the CPU, with one documented difference: the FFN's intermediate
// act(gate) * up is stored in the weights' dtype so that the second grouped
// GEMM runs on homogeneous bf16/f16 operands (tensor cores); with f32
// weights it is f32 and the FFN matches the CPU to summation order.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CUDA_KERNELS_H
#define MOERT_CUDA_KERNELS_H

#include "runtime/common/KvCache.h"
#include "runtime/common/LatentCache.h"
#include "runtime/common/Quantized.h"
#include "runtime/moert.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moert::cuda {

// A device operand: data == null means absent (optional operands).
struct Tensor {
  const void *data = nullptr;
  moert_dtype_t dtype = MOERT_F32;
  bool present() const { return data != nullptr; }
};
struct MutableTensor {
  void *data = nullptr;
  moert_dtype_t dtype = MOERT_F32;
  operator Tensor() const { return Tensor{data, dtype}; }
};

// Per-purpose device scratch, grown on demand (growing frees the old block,
// which synchronises the device: it happens on the first calls only; while
// a captured graph may still use the old block it is kept instead).
enum class Scratch : int {
  Scores,
  Selection,
  Bias,
  ChunkCounts,
  Totals,
  MemberStarts,
  Members,
  Kept,
  TokenSlots,
  Input,
  Hidden,
  Up,
  Act,
  Output,
  Pointers,
  Logits,
  SharedInput,
  SharedHidden,
  SharedAct,
  SharedOutput,
  Linear,
  Attention,
  LatentAttention,
  Count
};

// A stream, a cuBLAS handle bound to it, scratch, and a device error word
// that kernels set when they meet an out-of-range routing entry.
class Context {
public:
  explicit Context(cudaStream_t stream = nullptr);
  ~Context();
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t blas() const { return blas_; }
  void *scratch(Scratch slot, size_t bytes);
  // Device word: -1, or the first bad flat choice index a kernel found.
  long long *errorWord() const { return errorWord_; }
  // Synchronises the stream and throws if a kernel reported bad routing.
  void synchronize();

  // Graph capture (moert_graph_capture). While capturing, work is recorded
  // rather than run: a call that needs a device value on the host must
  // refuse (forbidInCapture), and so does a scratch block that would have
  // to grow (run a direct step of the same sizes first). Scratch blocks are
  // never freed while a graph that may address them lives.
  bool capturing() const { return capturing_; }
  void beginCapture();
  void endCapture();
  void graphCreated() { ++liveGraphs_; }
  void graphDestroyed();
  // Throws MOERT_UNSUPPORTED naming `call` while capturing.
  void forbidInCapture(const char *call, const char *why) const;
  // Frees device memory, or, while capturing (cudaFree would invalidate the
  // capture) or while a graph that may address it lives, keeps it until the
  // last graph is destroyed.
  cudaError_t release(void *block);

private:
  cudaStream_t stream_;
  cublasHandle_t blas_ = nullptr;
  void *blasWorkspace_ = nullptr;
  long long *errorWord_ = nullptr;
  struct Block {
    void *data = nullptr;
    size_t bytes = 0;
  };
  Block blocks_[static_cast<int>(Scratch::Count)];
  bool capturing_ = false;
  int liveGraphs_ = 0;
  std::vector<void *> retired_; // released while a graph may still use it
};

// Copies `bytes` of host memory to device `dst` in stream order through
// kernel arguments, so that the values are part of a captured graph (a
// memcpy node would read the host memory again at every replay).
void uploadSmall(Context &ctx, void *dst, const void *src, size_t bytes);

// logits[S,E] (f32) = x[S,H] . wg[E,H]^T (+ bias[E]).
void router(Context &ctx, Tensor x, Tensor wg, Tensor bias, float *logits,
            int64_t tokens, int64_t hidden, int64_t experts);

// The decoder calls (moert.h); ids, sequences and positions out of range
// are reported through the error word.
void linear(Context &ctx, Tensor x, Tensor w, Tensor bias, MutableTensor out,
            int64_t tokens, int64_t n, int64_t k);
void embedding(Context &ctx, const int32_t *ids, Tensor table,
               MutableTensor out, int64_t tokens, int64_t vocab,
               int64_t hidden);
void rope(Context &ctx, const moert_rope_config_t &cfg, MutableTensor x,
          const int32_t *positions, int64_t tokens, int64_t heads,
          int64_t headDim);
void kvAppend(Context &ctx, Tensor k, Tensor v, MutableTensor cache,
              const int32_t *sequences, const int32_t *positions,
              int64_t tokens, const KvCacheShape &shape);
// sinks.data null: none; window 0: none (moert.h).
void attention(Context &ctx, Tensor q, Tensor cache, const int32_t *sequences,
               const int32_t *positions, Tensor sinks, MutableTensor out,
               int64_t tokens, int64_t heads, const KvCacheShape &shape,
               float scale, int64_t window);
void argmax(Context &ctx, const float *logits, int32_t *ids, int64_t tokens,
            int64_t vocab);
// DeepSeek multi-head latent attention (moert.h).
void latentAppend(Context &ctx, const moert_rope_config_t &cfg, Tensor kv,
                  Tensor norm, MutableTensor cache, const int32_t *sequences,
                  const int32_t *positions, int64_t tokens,
                  const LatentCacheShape &shape, float epsilon);
void latentAttention(Context &ctx, const moert_rope_config_t &cfg, Tensor q,
                     Tensor kvB, Tensor cache, const int32_t *sequences,
                     const int32_t *positions, MutableTensor out,
                     int64_t tokens, const LatentHeads &heads,
                     const LatentCacheShape &shape, float scale);

// moert_gate; returns C. Dropless mode synchronises (C = max count).
int64_t gate(Context &ctx, const moert_gate_config_t &cfg, const float *logits,
             Tensor correctionBias, int64_t tokens, int32_t *ids,
             float *weights, int32_t *slots, int32_t *counts);

// The gate's stages (moert_gate_scores / _select / _slots / _normalize):
// the same kernels as gate(), one call per stage.
void gateScores(Context &ctx, const moert_gate_config_t &cfg,
                const float *logits, int64_t tokens, float *scores);
void gateSelect(Context &ctx, const moert_gate_config_t &cfg,
                const float *scores, Tensor correctionBias, int64_t tokens,
                int32_t *ids, float *weights);
// Returns C; dropless mode synchronises.
int64_t gateSlots(Context &ctx, const moert_gate_config_t &cfg,
                  const int32_t *ids, const float *weights, int64_t tokens,
                  int32_t *slots, int32_t *counts);
void gateNormalize(Context &ctx, const moert_gate_config_t &cfg,
                   const int32_t *slots, int64_t tokens, float *weights);

// weights null: rows copied unscaled.
void dispatch(Context &ctx, Tensor x, const int32_t *ids, const int32_t *slots,
              const float *weights, MutableTensor buf, int64_t tokens,
              int64_t hidden, int64_t topK, int64_t experts, int64_t capacity);

// out may alias addend; weights null: weight 1.
void combine(Context &ctx, Tensor y, const int32_t *ids, const int32_t *slots,
             const float *weights, Tensor addend, MutableTensor out,
             int64_t tokens, int64_t hidden, int64_t topK, int64_t experts,
             int64_t capacity);

// moert_fused_combine: combine, residual mix, shared add (+ gate) and
// addend as a sequence of the kernels above through an fp32 panel (so one
// rounding, as on the CPU); out may alias addend and x, which are read
// before out is written.
void fusedCombine(Context &ctx, Tensor y, const int32_t *ids,
                  const int32_t *slots, const float *weights, Tensor mlpOut,
                  Tensor wc, Tensor bc, Tensor shared, Tensor wSg, Tensor x,
                  Tensor addend, MutableTensor out, int64_t tokens,
                  int64_t hidden, int64_t topK, int64_t experts,
                  int64_t capacity);

struct FfnWeights {
  moert_ffn_kind_t kind = MOERT_FFN_GATED;
  moert_activation_t activation = MOERT_ACT_SILU;
  int64_t hidden = 0, ffn = 0;
  Tensor wGate, wUp, wDown, b1, b2; // as moert_ffn_desc_t, stacked [E,...]
};

// The `rows` operand of the expert FFNs (used rows per [expert, block]):
// the device array the row-skipping kernels read (null: every row used) and
// its host copy, which sizes the grouped GEMMs (cuBLAS takes problem sizes
// on the host). A captured call has no host copy: its GEMMs cover every row
// of the capacity and the kernels still skip (and zero) the unused ones.
struct Rows {
  const int32_t *device = nullptr;
  const int32_t *host = nullptr;
};

// moert_experts.
void experts(Context &ctx, const FfnWeights &ffn, Tensor in, MutableTensor out,
             Rows rows, int64_t experts, int64_t capacity, int64_t blocks);

// moert_fused_experts: packed [E, 2F, H] gate|up weights, one grouped GEMM
// for gate_up, a fused act(gate) * up pass, one grouped GEMM for down; a
// shared expert (shared != null) adds one problem to each grouped GEMM.
struct PackedFfnWeights {
  moert_activation_t activation = MOERT_ACT_SILU;
  int64_t hidden = 0, ffn = 0;
  Tensor wGateUp, wDown;
};
void fusedExperts(Context &ctx, const PackedFfnWeights &ffn, Tensor in,
                  MutableTensor out, Rows rows, int64_t experts,
                  int64_t capacity, int64_t blocks,
                  const PackedFfnWeights *shared, Tensor sharedX,
                  MutableTensor sharedOut, int64_t tokens);

// The stages of a gated experts() (moert_experts_linear, moert_activation,
// moert_multiply).
void expertsLinear(Context &ctx, Tensor w, Tensor in, MutableTensor out,
                   Rows rows, int64_t experts, int64_t capacity, int64_t blocks,
                   int64_t n, int64_t k);
// out may alias x.
void activation(Context &ctx, moert_activation_t activation, Tensor x,
                MutableTensor out, int64_t count);
// out may alias a or b.
void multiply(Context &ctx, Tensor a, Tensor b, MutableTensor out,
              int64_t count);

// moert_swiglu_clamped; out may alias gate or up.
void swigluClamped(Context &ctx, Tensor gate, Tensor up, MutableTensor out,
                   int64_t count, float alpha, float limit);
// moert_experts_bias_add over [experts, capacity, n]; out may alias x.
void expertsBiasAdd(Context &ctx, Tensor bias, Tensor x, MutableTensor out,
                    Rows rows, int64_t experts, int64_t capacity,
                    int64_t blocks, int64_t n);

void denseFfn(Context &ctx, const FfnWeights &ffn, Tensor x, MutableTensor out,
              int64_t tokens);

// moert_quantized_experts: gate/up/down data and scales stacked over
// experts (layouts in runtime/common/Quantized.h), dequantized tile by tile
// inside the kernel.
struct QuantizedWeight {
  Tensor data, scales;
};
struct QuantizedFfnWeights {
  moert_weight_format_t format = MOERT_WEIGHTS_FP8_E4M3_BLOCK;
  int64_t blockRows = 0, blockCols = 0;
  moert_activation_t activation = MOERT_ACT_SILU;
  int64_t hidden = 0, ffn = 0;
  QuantizedWeight gate, up, down;
};
void quantizedExperts(Context &ctx, const QuantizedFfnWeights &ffn, Tensor in,
                      MutableTensor out, Rows rows, int64_t experts,
                      int64_t capacity, int64_t blocks);
// moert_quantized_experts_linear: w's data and scales stacked over experts,
// each expert's [n, k] by `layout` (rows n, cols k).
void quantizedExpertsLinear(Context &ctx, const QuantizedLayout &layout,
                            const QuantizedWeight &w, Tensor in,
                            MutableTensor out, Rows rows, int64_t experts,
                            int64_t capacity, int64_t blocks);

void residualMix(Context &ctx, Tensor x, Tensor wc, Tensor bc, Tensor moeOut,
                 Tensor mlpOut, MutableTensor out, int64_t tokens,
                 int64_t hidden);

// out may alias routed.
void sharedAdd(Context &ctx, Tensor routed, Tensor shared, Tensor x, Tensor wSg,
               MutableTensor out, int64_t tokens, int64_t hidden);

// out may alias a or b.
void add(Context &ctx, Tensor a, Tensor b, MutableTensor out, int64_t count);

// moert_rms_norm; out may alias x.
void rmsNorm(Context &ctx, Tensor x, Tensor weight, MutableTensor out,
             int64_t tokens, int64_t hidden, float epsilon);

// moert_layer_norm (bias may be absent: null data); out may alias x.
void layerNorm(Context &ctx, Tensor x, Tensor weight, Tensor bias,
               MutableTensor out, int64_t tokens, int64_t hidden,
               float epsilon);

// moert_bias_add; out may alias x.
void biasAdd(Context &ctx, Tensor x, Tensor bias, MutableTensor out,
             int64_t tokens, int64_t hidden);

// moert_clamp; out may alias x.
void clamp(Context &ctx, Tensor x, MutableTensor out, int64_t count,
           float limit);

// moert_scale; out may alias x.
void scale(Context &ctx, Tensor x, MutableTensor out, int64_t count,
           float factor);

// dst = src converted element-wise (moert_buffer_copy).
void convert(Context &ctx, Tensor src, MutableTensor dst, int64_t count);

// count elements of elementBytes (1..8) each set to the host bit pattern
// `element` (moert_buffer_fill).
void fill(Context &ctx, void *dst, size_t elementBytes, const void *element,
          int64_t count);

} // namespace moert::cuda

#endif // MOERT_CUDA_KERNELS_H
