//===- runtime/cuda/Backend.cpp - The CUDA backend ------------------------===//
//
// Arguments arrive checked by runtime/api; Operands are device pointers
// (buffers are cudaMalloc allocations). Each call runs the kernels of
// Kernels.h on this process's stream, collectives go through runtime/nccl.
// Calls are asynchronous except where the host needs a result (download,
// gate capacity, all_reduce_i64) or reads caller memory (upload, weights);
// every collective waits for its stream through the communicator, which
// polls NCCL's async error and aborts on a failed or hung peer.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/Backend.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/common/NodeLayout.h"
#include "runtime/cuda/Check.h"
#include "runtime/cuda/Kernels.h"
#include "runtime/launch/Launch.h"
#include "runtime/nccl/Communicator.h"
#include "runtime/nccl/Plan.h"

#include <algorithm>
#include <cstring>
#include <string>

using namespace moert;
using namespace moert::cuda;

namespace {

constexpr int32_t defaultTimeoutMs = 60000;

// A group's communicator, and its node / same-local-rank splits for the
// hierarchical all-to-all (made on first use).
struct Group : GroupState {
  using GroupState::GroupState;
  std::unique_ptr<nccl::Communicator> comm, intraNode, interNode;
};

// A captured step: the instantiated graph and the communicators its
// collectives use.
struct Graph : GraphState {
  cudaGraphExec_t exec = nullptr;
  std::vector<nccl::Communicator *> comms;
};

Tensor tensor(Operand operand) { return Tensor{operand.data, operand.dtype}; }

MutableTensor mutableTensor(Operand operand) {
  return MutableTensor{operand.data, operand.dtype};
}

FfnWeights ffnWeights(const FfnOperands &w) {
  FfnWeights weights;
  weights.kind = w.kind;
  weights.activation = w.activation;
  weights.hidden = w.hidden;
  weights.ffn = w.ffn;
  weights.wGate = tensor(w.wGate);
  weights.wUp = tensor(w.wUp);
  weights.wDown = tensor(w.wDown);
  weights.b1 = tensor(w.b1);
  weights.b2 = tensor(w.b2);
  return weights;
}

PackedFfnWeights packedWeights(const PackedFfnOperands &w) {
  PackedFfnWeights weights;
  weights.activation = w.activation;
  weights.hidden = w.hidden;
  weights.ffn = w.ffn;
  weights.wGateUp = tensor(w.wGateUp);
  weights.wDown = tensor(w.wDown);
  return weights;
}

// out[count] = sum over j < terms of blocks[j * count, +count), in fp32 in
// order, rounded once to dtype (the sliced from_experts sum of the CPU
// backend).
void sumBlocks(Context &k, const char *blocks, moert_dtype_t dtype,
               int64_t count, int64_t terms, char *out) {
  size_t blockBytes = count * dtypeSize(dtype);
  MutableTensor sum{k.scratch(Scratch::Output, count * sizeof(float)),
                    MOERT_F32};
  convert(k, Tensor{blocks, dtype}, sum, count);
  for (int64_t j = 1; j < terms; ++j)
    add(k, sum, Tensor{blocks + j * blockBytes, dtype}, sum, count);
  convert(k, sum, MutableTensor{out, dtype}, count);
}

// This process's GPU: its stream and kernel context, and the NCCL world.
class CudaBackend final : public Backend {
public:
  explicit CudaBackend(const moert_world_desc_t &desc) : desc_(desc) {}
  // Finds this process's rank and device and connects to the world; a
  // failure leaves an object whose destructor releases what was made.
  void open();
  ~CudaBackend() override {
    // Communicators and the context go before the stream they use.
    world_.reset();
    context_.reset();
    if (stream_)
      cudaStreamDestroy(stream_); // teardown: the status has nowhere to go
  }

  // Every operation of the interface.
#define MOERT_BACKEND_OPERATION(Result, Name, Parameters)                      \
  Result Name Parameters override;
#include "runtime/common/BackendOperations.def"

private:
  // A rows operand for the FFN kernels: its device array and, outside graph
  // capture, its host copy in `host` (cuBLAS grouped GEMM sizes live on the
  // host; reading them synchronises). Absent: every row used.
  Rows usedRows(Operand rows, int64_t count, std::vector<int32_t> &host);
  // f32 logits for the gate (other float dtypes widened into scratch).
  const float *floatLogits(Operand logits, int64_t count);
  // Waits for the stream through the communicators of a collective: a failed
  // peer gives MOERT_ABORTED, a hang MOERT_TIMEOUT. While capturing nothing
  // runs yet: the graph remembers them and its replay waits instead.
  void awaitCollective(const std::vector<nccl::Communicator *> &comms);
  // Runs a collective's enqueue, then awaits it.
  template <typename Enqueue>
  void collective(nccl::Communicator &comm, Enqueue &&enqueue) {
    enqueue(context_->stream());
    awaitCollective({&comm});
  }

  const moert_world_desc_t desc_;
  launch::RankInfo info_;
  int32_t device_ = 0;
  int32_t timeoutMs_ = defaultTimeoutMs;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Context> context_;
  std::unique_ptr<nccl::Communicator> world_;
  // While capturing: the communicators the graph's collectives use (a
  // replay polls them for errors and hangs).
  std::vector<nccl::Communicator *> *captureComms_ = nullptr;
};

void CudaBackend::open() {
  info_ = launch::discoverRankFromProcessEnv();
  launch::checkMesh(info_, desc_.nodes, desc_.gpus_per_node);
  timeoutMs_ = desc_.collective_timeout_ms > 0 ? desc_.collective_timeout_ms
                                               : defaultTimeoutMs;
  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver ||
      (status == cudaSuccess && devices == 0))
    fail(MOERT_UNSUPPORTED, "MOERT_BACKEND_CUDA: no usable CUDA device (",
         "cudaGetDeviceCount: ", cudaGetErrorString(status), ")");
  MOERT_CUDA_CHECK(status);
  // A launcher that gives each rank only its own GPU (Slurm
  // --gpus-per-task=1, CUDA_VISIBLE_DEVICES per rank) leaves one device.
  require(info_.localRank < devices || devices == 1, "rank ", info_.rank, " (",
          info_.source, " launch) has local rank ", info_.localRank,
          " but this process sees ", devices, " CUDA devices");
  device_ = devices == 1 ? 0 : info_.localRank;
  MOERT_CUDA_CHECK(cudaSetDevice(device_));
  MOERT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  context_ = std::make_unique<Context>(stream_);
  world_ = nccl::Communicator::createWorld(info_, timeoutMs_);
}

void CudaBackend::run(const RankBody &body) {
  MOERT_CUDA_CHECK(cudaSetDevice(device_)); // the device is per thread
  // One process per GPU: the body runs once, for this process's rank.
  std::string message;
  moert_status_t status = body(info_.rank, message);
  // Peers waiting on this rank see it through NCCL (or their timeout).
  if (status != MOERT_OK)
    fail(status, "rank ", info_.rank, " failed: ", message);
  // Outstanding kernels and collectives: their errors belong to this run.
  world_->wait(stream_);
  context_->synchronize();
}

Rows CudaBackend::usedRows(Operand rows, int64_t count,
                           std::vector<int32_t> &host) {
  Rows used;
  if (!rows.present())
    return used;
  used.device = rows.as<const int32_t>();
  if (context_->capturing())
    return used;
  host.resize(count);
  MOERT_CUDA_CHECK(cudaMemcpyAsync(host.data(), used.device,
                                   count * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, stream_));
  context_->synchronize();
  used.host = host.data();
  return used;
}

const float *CudaBackend::floatLogits(Operand logits, int64_t count) {
  if (logits.dtype == MOERT_F32)
    return logits.as<const float>();
  void *widened = context_->scratch(Scratch::Logits, count * sizeof(float));
  convert(*context_, tensor(logits), MutableTensor{widened, MOERT_F32}, count);
  return static_cast<const float *>(widened);
}

void CudaBackend::awaitCollective(
    const std::vector<nccl::Communicator *> &comms) {
  if (captureComms_) {
    for (nccl::Communicator *c : comms)
      if (std::find(captureComms_->begin(), captureComms_->end(), c) ==
          captureComms_->end())
        captureComms_->push_back(c);
    return;
  }
  nccl::Communicator::waitAll(comms, stream_);
}

void *CudaBackend::allocate(int32_t rank, size_t bytes) {
  context_->forbidInCapture("moert_buffer_alloc",
                            "allocate buffers before capturing");
  void *data = nullptr;
  // cudaErrorMemoryAllocation maps to MOERT_OUT_OF_MEMORY.
  MOERT_CUDA_CHECK(cudaMalloc(&data, std::max<size_t>(bytes, 1)));
  return data;
}

void CudaBackend::release(int32_t rank, void *data) {
  // Kernels still reading the buffer are ordered before the free by the
  // device; cudaFree synchronises. Deferred while capturing or while a
  // graph lives (Context::release).
  cudaError_t status = context_->release(data);
  if (status != cudaSuccess)
    fail(MOERT_INTERNAL, "cudaFree: ", cudaGetErrorString(status));
}

void CudaBackend::upload(int32_t rank, Operand dst, const void *src,
                         int64_t count) {
  context_->forbidInCapture(
      "moert_buffer_upload",
      "a replay would read the host memory again; upload before replaying");
  if (count == 0)
    return;
  MOERT_CUDA_CHECK(cudaMemcpyAsync(dst.data, src, count * dtypeSize(dst.dtype),
                                   cudaMemcpyHostToDevice, stream_));
  // The caller may reuse src once we return.
  MOERT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::download(int32_t rank, void *dst, Operand src,
                           int64_t count) {
  context_->forbidInCapture("moert_buffer_download",
                            "the values do not exist until a replay");
  if (count > 0)
    MOERT_CUDA_CHECK(cudaMemcpyAsync(dst, src.data,
                                     count * dtypeSize(src.dtype),
                                     cudaMemcpyDeviceToHost, stream_));
  // Also reports bad routing found by earlier kernels.
  context_->synchronize();
}

void CudaBackend::fill(int32_t rank, Operand dst, int64_t count, double value) {
  // The element's bytes exactly as the CPU backend writes them.
  char element[8];
  size_t size = dtypeSize(dst.dtype);
  if (dst.dtype == MOERT_I32) {
    int32_t v = static_cast<int32_t>(value);
    std::memcpy(element, &v, sizeof(v));
  } else if (dst.dtype == MOERT_I64) {
    int64_t v = static_cast<int64_t>(value);
    std::memcpy(element, &v, sizeof(v));
  } else {
    float asFloat = static_cast<float>(value);
    convertFromFloat(&asFloat, element, dst.dtype, 1);
  }
  cuda::fill(*context_, dst.data, size, element, count);
}

void CudaBackend::copy(int32_t rank, Operand src, Operand dst, int64_t count) {
  if (src.dtype == dst.dtype) {
    if (count > 0)
      MOERT_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data,
                                       count * dtypeSize(src.dtype),
                                       cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  // The device conversion goes through fp32, exact only between floats.
  if (!isFloatType(src.dtype) || !isFloatType(dst.dtype))
    fail(MOERT_UNSUPPORTED,
         "moert_buffer_copy on CUDA converts between f32, "
         "f16 and bf16 only, not ",
         dtypeName(src.dtype), " to ", dtypeName(dst.dtype));
  convert(*context_, tensor(src), mutableTensor(dst), count);
}

void *CudaBackend::hostAddress(int32_t, Operand) {
  fail(MOERT_UNSUPPORTED, "CUDA buffers are device memory: no host address "
                          "(moert_buffer_download copies them to the host)");
}

void CudaBackend::writeFromHost(
    int32_t rank, Operand dst, int64_t count,
    const std::function<void(void *host)> &produce) {
  std::vector<char> staging(count * dtypeSize(dst.dtype));
  produce(staging.data());
  context_->forbidInCapture("moert_weights_load",
                            "load weights before capturing");
  upload(rank, dst, staging.data(), count);
}

void CudaBackend::router(int32_t rank, Operand x, Operand wg, Operand bias,
                         Operand logits, int64_t tokens, int64_t hidden,
                         int64_t experts) {
  cuda::router(*context_, tensor(x), tensor(wg), tensor(bias),
               logits.as<float>(), tokens, hidden, experts);
}

int64_t CudaBackend::gate(int32_t rank, const moert_gate_config_t &cfg,
                          Operand logits, Operand correctionBias,
                          int64_t tokens, Operand ids, Operand weights,
                          Operand slots, Operand counts) {
  if (cfg.capacity_factor == 0.0 && cfg.static_capacity == 0)
    context_->forbidInCapture(
        "moert_gate", "a dropless gate without static_capacity reads C = max "
                      "count back to the host (compile with "
                      "static-capacity=1)");
  return cuda::gate(*context_, cfg, floatLogits(logits, tokens * cfg.experts),
                    tensor(correctionBias), tokens, ids.as<int32_t>(),
                    weights.as<float>(), slots.as<int32_t>(),
                    counts.as<int32_t>());
}

void CudaBackend::gateScores(int32_t rank, const moert_gate_config_t &cfg,
                             Operand logits, int64_t tokens, Operand scores) {
  cuda::gateScores(*context_, cfg, floatLogits(logits, tokens * cfg.experts),
                   tokens, scores.as<float>());
}

void CudaBackend::gateSelect(int32_t rank, const moert_gate_config_t &cfg,
                             Operand scores, Operand correctionBias,
                             int64_t tokens, Operand ids, Operand weights) {
  cuda::gateSelect(*context_, cfg, scores.as<const float>(),
                   tensor(correctionBias), tokens, ids.as<int32_t>(),
                   weights.as<float>());
}

int64_t CudaBackend::gateSlots(int32_t rank, const moert_gate_config_t &cfg,
                               Operand ids, Operand weights, int64_t tokens,
                               Operand slots, Operand counts) {
  context_->forbidInCapture("moert_gate_slots",
                            "it checks its ids on the host; capture the "
                            "fused moert_gate");
  return cuda::gateSlots(*context_, cfg, ids.as<const int32_t>(),
                         weights.as<const float>(), tokens, slots.as<int32_t>(),
                         counts.as<int32_t>());
}

void CudaBackend::gateNormalize(int32_t rank, const moert_gate_config_t &cfg,
                                Operand slots, int64_t tokens,
                                Operand weights) {
  cuda::gateNormalize(*context_, cfg, slots.as<const int32_t>(), tokens,
                      weights.as<float>());
}

void CudaBackend::dispatch(int32_t rank, Operand x, Operand ids, Operand slots,
                           Operand weights, Operand buf, int64_t tokens,
                           int64_t hidden, int64_t topK, int64_t experts,
                           int64_t capacity) {
  cuda::dispatch(*context_, tensor(x), ids.as<const int32_t>(),
                 slots.as<const int32_t>(), weights.as<const float>(),
                 mutableTensor(buf), tokens, hidden, topK, experts, capacity);
}

void CudaBackend::combine(int32_t rank, Operand y, Operand ids, Operand slots,
                          Operand weights, Operand addend, Operand out,
                          int64_t tokens, int64_t hidden, int64_t topK,
                          int64_t experts, int64_t capacity) {
  cuda::combine(*context_, tensor(y), ids.as<const int32_t>(),
                slots.as<const int32_t>(), weights.as<const float>(),
                tensor(addend), mutableTensor(out), tokens, hidden, topK,
                experts, capacity);
}

void CudaBackend::fusedCombine(int32_t rank, Operand y, Operand ids,
                               Operand slots, Operand weights, Operand mlpOut,
                               Operand wc, Operand bc, Operand shared,
                               Operand wSg, Operand x, Operand addend,
                               Operand out, int64_t tokens, int64_t hidden,
                               int64_t topK, int64_t experts,
                               int64_t capacity) {
  cuda::fusedCombine(*context_, tensor(y), ids.as<const int32_t>(),
                     slots.as<const int32_t>(), weights.as<const float>(),
                     tensor(mlpOut), tensor(wc), tensor(bc), tensor(shared),
                     tensor(wSg), tensor(x), tensor(addend), mutableTensor(out),
                     tokens, hidden, topK, experts, capacity);
}

void CudaBackend::experts(int32_t rank, const FfnOperands &ffn, Operand in,
                          Operand out, Operand rows, int64_t experts,
                          int64_t capacity, int64_t blocks) {
  std::vector<int32_t> host;
  Rows used = usedRows(rows, experts * blocks, host);
  cuda::experts(*context_, ffnWeights(ffn), tensor(in), mutableTensor(out),
                used, experts, capacity, blocks);
}

void CudaBackend::expertsLinear(int32_t rank, Operand w, Operand in,
                                Operand out, Operand rows, int64_t experts,
                                int64_t capacity, int64_t blocks, int64_t n,
                                int64_t k) {
  std::vector<int32_t> host;
  Rows used = usedRows(rows, experts * blocks, host);
  cuda::expertsLinear(*context_, tensor(w), tensor(in), mutableTensor(out),
                      used, experts, capacity, blocks, n, k);
}

void CudaBackend::activation(int32_t rank, moert_activation_t activation,
                             Operand x, Operand out, int64_t count) {
  cuda::activation(*context_, activation, tensor(x), mutableTensor(out), count);
}

void CudaBackend::multiply(int32_t rank, Operand a, Operand b, Operand out,
                           int64_t count) {
  cuda::multiply(*context_, tensor(a), tensor(b), mutableTensor(out), count);
}

void CudaBackend::swigluClamped(int32_t rank, Operand gate, Operand up,
                                Operand out, int64_t count, float alpha,
                                float limit) {
  cuda::swigluClamped(*context_, tensor(gate), tensor(up), mutableTensor(out),
                      count, alpha, limit);
}

void CudaBackend::expertsBiasAdd(int32_t rank, Operand bias, Operand x,
                                 Operand out, Operand rows, int64_t experts,
                                 int64_t capacity, int64_t blocks, int64_t n) {
  std::vector<int32_t> host;
  Rows used = usedRows(rows, experts * blocks, host);
  cuda::expertsBiasAdd(*context_, tensor(bias), tensor(x), mutableTensor(out),
                       used, experts, capacity, blocks, n);
}

void CudaBackend::fusedExperts(int32_t rank, const PackedFfnOperands &ffn,
                               Operand in, Operand out, Operand rows,
                               int64_t experts, int64_t capacity,
                               int64_t blocks, const PackedFfnOperands *shared,
                               Operand sharedX, Operand sharedOut,
                               int64_t tokens) {
  std::vector<int32_t> host;
  Rows used = usedRows(rows, experts * blocks, host);
  PackedFfnWeights routed = packedWeights(ffn);
  PackedFfnWeights sharedWeights;
  if (shared)
    sharedWeights = packedWeights(*shared);
  cuda::fusedExperts(*context_, routed, tensor(in), mutableTensor(out), used,
                     experts, capacity, blocks,
                     shared ? &sharedWeights : nullptr, tensor(sharedX),
                     mutableTensor(sharedOut), tokens);
}

void CudaBackend::quantizedExperts(int32_t rank,
                                   const QuantizedFfnOperands &ffn, Operand in,
                                   Operand out, Operand rows, int64_t experts,
                                   int64_t capacity, int64_t blocks) {
  std::vector<int32_t> host;
  Rows used = usedRows(rows, experts * blocks, host);
  auto weight = [](const QuantizedOperand &w) {
    return QuantizedWeight{tensor(w.data), tensor(w.scales)};
  };
  QuantizedFfnWeights weights{
      ffn.format, ffn.blockRows,    ffn.blockCols,  ffn.activation,  ffn.hidden,
      ffn.ffn,    weight(ffn.gate), weight(ffn.up), weight(ffn.down)};
  cuda::quantizedExperts(*context_, weights, tensor(in), mutableTensor(out),
                         used, experts, capacity, blocks);
}

void CudaBackend::quantizedExpertsLinear(int32_t rank,
                                         const QuantizedLinearOperands &w,
                                         Operand in, Operand out, Operand rows,
                                         int64_t experts, int64_t capacity,
                                         int64_t blocks) {
  std::vector<int32_t> host;
  Rows used = usedRows(rows, experts * blocks, host);
  QuantizedLayout layout{w.format, w.n, w.k, w.blockRows, w.blockCols};
  cuda::quantizedExpertsLinear(
      *context_, layout, {tensor(w.w.data), tensor(w.w.scales)}, tensor(in),
      mutableTensor(out), used, experts, capacity, blocks);
}

void CudaBackend::denseFfn(int32_t rank, const FfnOperands &ffn, Operand x,
                           Operand out, int64_t tokens) {
  cuda::denseFfn(*context_, ffnWeights(ffn), tensor(x), mutableTensor(out),
                 tokens);
}

void CudaBackend::residualMix(int32_t rank, Operand x, Operand wc, Operand bc,
                              Operand moeOut, Operand mlpOut, Operand out,
                              int64_t tokens, int64_t hidden) {
  cuda::residualMix(*context_, tensor(x), tensor(wc), tensor(bc),
                    tensor(moeOut), tensor(mlpOut), mutableTensor(out), tokens,
                    hidden);
}

void CudaBackend::sharedAdd(int32_t rank, Operand routed, Operand shared,
                            Operand x, Operand wSg, Operand out, int64_t tokens,
                            int64_t hidden) {
  cuda::sharedAdd(*context_, tensor(routed), tensor(shared), tensor(x),
                  tensor(wSg), mutableTensor(out), tokens, hidden);
}

void CudaBackend::add(int32_t rank, Operand a, Operand b, Operand out,
                      int64_t count) {
  cuda::add(*context_, tensor(a), tensor(b), mutableTensor(out), count);
}

void CudaBackend::rmsNorm(int32_t rank, Operand x, Operand weight, Operand out,
                          int64_t tokens, int64_t hidden, float epsilon) {
  cuda::rmsNorm(*context_, tensor(x), tensor(weight), mutableTensor(out),
                tokens, hidden, epsilon);
}

void CudaBackend::layerNorm(int32_t rank, Operand x, Operand weight,
                            Operand bias, Operand out, int64_t tokens,
                            int64_t hidden, float epsilon) {
  cuda::layerNorm(*context_, tensor(x), tensor(weight), tensor(bias),
                  mutableTensor(out), tokens, hidden, epsilon);
}

void CudaBackend::biasAdd(int32_t rank, Operand x, Operand bias, Operand out,
                          int64_t tokens, int64_t hidden) {
  cuda::biasAdd(*context_, tensor(x), tensor(bias), mutableTensor(out), tokens,
                hidden);
}

void CudaBackend::clamp(int32_t rank, Operand x, Operand out, int64_t count,
                        float limit) {
  cuda::clamp(*context_, tensor(x), mutableTensor(out), count, limit);
}

void CudaBackend::scale(int32_t rank, Operand x, Operand out, int64_t count,
                        float factor) {
  cuda::scale(*context_, tensor(x), mutableTensor(out), count, factor);
}

void CudaBackend::linear(int32_t rank, Operand x, Operand w, Operand bias,
                         Operand out, int64_t tokens, int64_t n, int64_t k) {
  cuda::linear(*context_, tensor(x), tensor(w), tensor(bias),
               mutableTensor(out), tokens, n, k);
}

void CudaBackend::embedding(int32_t rank, Operand ids, Operand table,
                            Operand out, int64_t tokens, int64_t vocab,
                            int64_t hidden) {
  cuda::embedding(*context_, ids.as<const int32_t>(), tensor(table),
                  mutableTensor(out), tokens, vocab, hidden);
}

void CudaBackend::rope(int32_t rank, const moert_rope_config_t &cfg, Operand x,
                       Operand positions, int64_t tokens, int64_t heads,
                       int64_t headDim) {
  cuda::rope(*context_, cfg, mutableTensor(x), positions.as<const int32_t>(),
             tokens, heads, headDim);
}

void CudaBackend::kvAppend(int32_t rank, Operand k, Operand v, Operand cache,
                           Operand sequences, Operand positions, int64_t tokens,
                           const KvCacheShape &shape) {
  cuda::kvAppend(*context_, tensor(k), tensor(v), mutableTensor(cache),
                 sequences.as<const int32_t>(), positions.as<const int32_t>(),
                 tokens, shape);
}

void CudaBackend::attention(int32_t rank, Operand q, Operand cache,
                            Operand sequences, Operand positions, Operand sinks,
                            Operand out, int64_t tokens, int64_t heads,
                            const KvCacheShape &shape, float scale,
                            int64_t window) {
  cuda::attention(*context_, tensor(q), tensor(cache),
                  sequences.as<const int32_t>(), positions.as<const int32_t>(),
                  tensor(sinks), mutableTensor(out), tokens, heads, shape,
                  scale, window);
}

void CudaBackend::argmax(int32_t rank, Operand logits, Operand ids,
                         int64_t tokens, int64_t vocab) {
  cuda::argmax(*context_, logits.as<const float>(), ids.as<int32_t>(), tokens,
               vocab);
}

void CudaBackend::latentAppend(int32_t rank, const moert_rope_config_t &cfg,
                               Operand kv, Operand norm, Operand cache,
                               Operand sequences, Operand positions,
                               int64_t tokens, const LatentCacheShape &shape,
                               float epsilon) {
  cuda::latentAppend(*context_, cfg, tensor(kv), tensor(norm),
                     mutableTensor(cache), sequences.as<const int32_t>(),
                     positions.as<const int32_t>(), tokens, shape, epsilon);
}

void CudaBackend::latentAttention(int32_t rank, const moert_rope_config_t &cfg,
                                  Operand q, Operand kvB, Operand cache,
                                  Operand sequences, Operand positions,
                                  Operand out, int64_t tokens,
                                  const LatentHeads &heads,
                                  const LatentCacheShape &shape, float scale) {
  cuda::latentAttention(*context_, cfg, tensor(q), tensor(kvB), tensor(cache),
                        sequences.as<const int32_t>(),
                        positions.as<const int32_t>(), mutableTensor(out),
                        tokens, heads, shape, scale);
}

std::unique_ptr<GroupState> CudaBackend::createGroup(int32_t rank,
                                                     std::vector<int32_t> ranks,
                                                     int32_t member) {
  context_->forbidInCapture("moert_group_create",
                            "ncclCommSplit cannot be captured; create "
                            "groups before capturing");
  // ncclCommSplit is collective over the world: the groups of one call
  // partition it, each named by its lowest rank, members ordered as listed.
  int32_t color = *std::min_element(ranks.begin(), ranks.end());
  auto group = std::make_unique<Group>(std::move(ranks), member);
  group->comm = world_->split(color, member);
  require(group->comm->size() == group->size() && group->comm->rank() == member,
          "group of ", group->size(), " ranks led by rank ", color,
          ": the ranks' lists disagree (the NCCL split gave ",
          group->comm->size(),
          " members); on CUDA every rank of the world "
          "creates its group in the same call, the lists partitioning the "
          "world");
  return group;
}

void CudaBackend::barrier(int32_t rank, GroupState &group) {
  // An all-reduce of one word: NCCL has no barrier.
  nccl::Communicator &comm = *static_cast<Group &>(group).comm;
  void *word = context_->scratch(Scratch::Totals, sizeof(int32_t));
  collective(comm, [&](cudaStream_t stream) {
    MOERT_CUDA_CHECK(cudaMemsetAsync(word, 0, sizeof(int32_t), stream));
    comm.allReduce(word, word, 1, MOERT_I32, MOERT_REDUCE_SUM, stream);
  });
}

void CudaBackend::allReduce(int32_t rank, GroupState &group,
                            moert_reduce_op_t op, Operand send, Operand recv,
                            int64_t count) {
  if (count == 0)
    return;
  nccl::Communicator &comm = *static_cast<Group &>(group).comm;
  collective(comm, [&](cudaStream_t stream) {
    comm.allReduce(send.data, recv.data, count, send.dtype, op, stream);
  });
}

void CudaBackend::allGather(int32_t rank, GroupState &group, Operand send,
                            Operand recv, int64_t count) {
  if (count == 0)
    return;
  nccl::Communicator &comm = *static_cast<Group &>(group).comm;
  collective(comm, [&](cudaStream_t stream) {
    comm.allGather(send.data, recv.data, count, send.dtype, stream);
  });
}

void CudaBackend::reduceScatter(int32_t rank, GroupState &group, Operand send,
                                Operand recv, int64_t count) {
  if (count == 0)
    return;
  nccl::Communicator &comm = *static_cast<Group &>(group).comm;
  collective(comm, [&](cudaStream_t stream) {
    comm.reduceScatter(send.data, recv.data, count, send.dtype, stream);
  });
}

int64_t CudaBackend::allReduceI64(int32_t rank, GroupState &group,
                                  moert_reduce_op_t op, int64_t value) {
  context_->forbidInCapture("moert_all_reduce_i64",
                            "its result is a host value");
  nccl::Communicator &comm = *static_cast<Group &>(group).comm;
  auto *word =
      static_cast<int64_t *>(context_->scratch(Scratch::Totals, sizeof(value)));
  collective(comm, [&](cudaStream_t stream) {
    MOERT_CUDA_CHECK(cudaMemcpyAsync(word, &value, sizeof(value),
                                     cudaMemcpyHostToDevice, stream));
    comm.allReduce(word, word, 1, MOERT_I64, op, stream);
  });
  // Only after the awaited collective: a copy into pageable memory blocks
  // the host until the stream gets there, out of reach of the timeout.
  int64_t result = 0;
  MOERT_CUDA_CHECK(cudaMemcpyAsync(&result, word, sizeof(result),
                                   cudaMemcpyDeviceToHost, stream_));
  return result;
}

void CudaBackend::allToAll(int32_t rank, GroupState &group,
                           moert_a2a_direction_t direction,
                           moert_a2a_algorithm_t algorithm, Operand send,
                           Operand recv, int64_t expertsLocal, int64_t capacity,
                           int64_t hidden, int64_t slices) {
  Group &g = static_cast<Group &>(group);
  Context &k = *context_;
  int32_t members = g.size();
  nccl::Extents x{members, g.member, expertsLocal, capacity, hidden};
  bool toExperts = direction == MOERT_A2A_TO_EXPERTS;
  int64_t rows = capacity * hidden;
  int64_t peerChunk = expertsLocal * rows; // one shard's rows, in elements
  int64_t expertSide = members * peerChunk;
  int64_t tokenSide = members / slices * peerChunk;
  const char *in = send.as<const char>();
  char *out = recv.as<char>();
  if (rows == 0)
    return;
  size_t elementBytes = dtypeSize(send.dtype);

  if (algorithm == MOERT_A2A_FLAT) {
    nccl::Exchange plan =
        slices == 1
            ? nccl::flatAllToAll(direction, x)
            : nccl::slicedAllToAll(direction, x, static_cast<int32_t>(slices));
    if (toExperts || slices == 1) {
      collective(*g.comm, [&](cudaStream_t stream) {
        g.comm->exchange(plan, in, out, send.dtype, stream);
      });
      return;
    }
    // from_experts: the slice holders' partials land in [T][E][C][H].
    auto *partials = static_cast<char *>(
        k.scratch(Scratch::Hidden, slices * tokenSide * elementBytes));
    collective(*g.comm, [&](cudaStream_t stream) {
      g.comm->exchange(plan, in, partials, send.dtype, stream);
    });
    sumBlocks(k, partials, send.dtype, tokenSide, slices, out);
    return;
  }

  // Hierarchical: the chunk exchange of runtime/nccl through node and
  // same-local-rank splits of the group, made on first use (collective
  // over the group, like the all-to-all itself).
  NodeLayout layout = nodeLayout(g.ranks, desc_.gpus_per_node);
  if (!g.intraNode) {
    k.forbidInCapture("moert_all_to_all",
                      "the hierarchical exchange makes its node splits "
                      "on first use; run one step directly first");
    g.intraNode =
        g.comm->split(g.member / layout.perNode, g.member % layout.perNode);
    g.interNode =
        g.comm->split(g.member % layout.perNode, g.member / layout.perNode);
  }
  void *staging = k.scratch(Scratch::Input, 3 * expertSide * elementBytes);
  auto exchange = [&](moert_a2a_direction_t way, const void *from, void *to) {
    nccl::hierarchicalAllToAll(*g.intraNode, *g.interNode, way, x, layout.nodes,
                               layout.perNode, from, to, staging, send.dtype,
                               k.stream());
    // Its sends and receives are on the two splits: watch both.
    awaitCollective({g.intraNode.get(), g.interNode.get()});
  };
  if (slices == 1) {
    exchange(direction, in, out);
    return;
  }
  size_t chunkBytes = peerChunk * elementBytes;
  if (toExperts) {
    // Member q's chunk is its shard's (q / slices): replicate, then the
    // unsliced exchange.
    auto *replicated =
        static_cast<char *>(k.scratch(Scratch::Hidden, members * chunkBytes));
    for (int32_t q = 0; q < members; ++q)
      MOERT_CUDA_CHECK(cudaMemcpyAsync(replicated + q * chunkBytes,
                                       in + q / slices * chunkBytes, chunkBytes,
                                       cudaMemcpyDeviceToDevice, k.stream()));
    exchange(direction, replicated, out);
    return;
  }
  // from_experts: every member's partial rows arrive as [source p][E_local]
  // [rows]; shard q sums its holders q * slices + j.
  auto *fromAll =
      static_cast<char *>(k.scratch(Scratch::Hidden, members * chunkBytes));
  exchange(direction, in, fromAll);
  for (int64_t q = 0; q < members / slices; ++q)
    sumBlocks(k, fromAll + q * slices * chunkBytes, send.dtype, peerChunk,
              slices, out + q * chunkBytes);
}

std::unique_ptr<GraphState> CudaBackend::captureGraph(int32_t rank,
                                                      const StepBody &step) {
  Context &k = *context_;
  auto graph = std::make_unique<Graph>();
  graph->comms.push_back(world_.get());
  // Thread-local mode: only this thread's unsafe calls break the capture.
  MOERT_CUDA_CHECK(
      cudaStreamBeginCapture(k.stream(), cudaStreamCaptureModeThreadLocal));
  k.beginCapture();
  captureComms_ = &graph->comms;
  std::string message;
  moert_status_t status = step(message);
  captureComms_ = nullptr;
  k.endCapture();
  cudaGraph_t recorded = nullptr;
  cudaError_t ended = cudaStreamEndCapture(k.stream(), &recorded);
  if (status != MOERT_OK) {
    if (recorded)
      cudaGraphDestroy(recorded);
    fail(status, "the captured step failed: ", message);
  }
  MOERT_CUDA_CHECK(ended);
  cudaError_t instantiated = cudaGraphInstantiate(&graph->exec, recorded, 0);
  cudaGraphDestroy(recorded);
  MOERT_CUDA_CHECK(instantiated);
  k.graphCreated();
  return graph;
}

void CudaBackend::replayGraph(int32_t rank, GraphState &graph) {
  Graph &g = static_cast<Graph &>(graph);
  MOERT_CUDA_CHECK(cudaGraphLaunch(g.exec, stream_));
  nccl::Communicator::waitAll(g.comms, stream_);
  // Bad routing met by the graph's kernels.
  context_->synchronize();
}

void CudaBackend::destroyGraph(int32_t rank, GraphState &graph) {
  // Teardown: the exec's status has nowhere to go; the retired blocks'
  // frees (graphDestroyed) are reported.
  cudaGraphExecDestroy(static_cast<Graph &>(graph).exec);
  context_->graphDestroyed();
}

} // namespace

std::unique_ptr<Backend>
moert::cuda::createBackend(const moert_world_desc_t &desc) {
  auto backend = std::make_unique<CudaBackend>(desc);
  backend->open();
  return backend;
}
