//===- runtime/cuda/Api.cpp - moert.h entry points on CUDA ----------------===//
//
// Arguments arrive validated by runtime/cpu (see Api.h); here views become
// device pointers and each call runs the kernels of Kernels.h on this
// process's stream, collectives go through runtime/nccl. Calls are
// asynchronous except where the host needs a result (download, gate
// capacity, all_reduce_i64) or reads caller memory (upload, weights); every
// collective waits for its stream through the communicator, which polls
// NCCL's async error and aborts on a failed or hung peer.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/Api.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Error.h"
#include "runtime/common/NodeLayout.h"
#include "runtime/cpu/Backend.h"
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

// This process's GPU: its stream and kernel context, and the NCCL world.
struct Process : DeviceWorld {
  launch::RankInfo info;
  int32_t device = 0;
  int32_t timeoutMs = defaultTimeoutMs;
  cudaStream_t stream = nullptr;
  std::unique_ptr<Context> context;
  std::unique_ptr<nccl::Communicator> world;
  // While capturing: the communicators the graph's collectives use (a
  // replay polls them for errors and hangs).
  std::vector<nccl::Communicator *> *captureComms = nullptr;

  ~Process() override {
    // Communicators and the context go before the stream they use.
    world.reset();
    context.reset();
    if (stream)
      cudaStreamDestroy(stream); // teardown: the status has nowhere to go
  }
};

// A group's communicator, and its node / same-local-rank splits for the
// hierarchical all-to-all (made on first use).
struct Group : DeviceGroup {
  std::unique_ptr<nccl::Communicator> comm, intraNode, interNode;
};

Process &process(moert_context_t ctx) {
  return static_cast<Process &>(*ctx->world->device);
}

Context &kernels(moert_context_t ctx) { return *process(ctx).context; }

Group &deviceGroup(moert_group_t group) {
  return static_cast<Group &>(*group->device);
}

// The views were validated by the caller; viewData gives the device address.
Tensor tensor(moert_view_t view, int64_t count, const char *name) {
  if (!cpu::isPresent(view))
    return Tensor{};
  return Tensor{cpu::viewData(view, count, name), view.dtype};
}

MutableTensor mutableTensor(moert_view_t view, int64_t count,
                            const char *name) {
  return MutableTensor{cpu::viewData(view, count, name), view.dtype};
}

template <typename T> T *typed(moert_view_t view, int64_t count,
                               const char *name) {
  return reinterpret_cast<T *>(cpu::viewData(view, count, name));
}

// f32 logits for the gate (other float dtypes widened into scratch).
const float *floatLogits(Context &ctx, moert_view_t logits, int64_t count) {
  Tensor in = tensor(logits, count, "logits");
  if (in.dtype == MOERT_F32)
    return static_cast<const float *>(in.data);
  void *widened = ctx.scratch(Scratch::Logits, count * sizeof(float));
  convert(ctx, in, MutableTensor{widened, MOERT_F32}, count);
  return static_cast<const float *>(widened);
}

// A rows operand for the FFN kernels: its device array and, outside graph
// capture, its host copy in `host` (cuBLAS grouped GEMM sizes live on the
// host; reading them synchronises). Absent: every row used.
Rows usedRows(moert_context_t ctx, moert_view_t rows, int64_t count,
              std::vector<int32_t> &host) {
  Rows used;
  if (!cpu::isPresent(rows))
    return used;
  used.device = typed<const int32_t>(rows, count, "rows");
  Context &k = kernels(ctx);
  if (k.capturing())
    return used;
  host.resize(count);
  MOERT_CUDA_CHECK(cudaMemcpyAsync(host.data(), used.device,
                                   count * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, k.stream()));
  k.synchronize();
  used.host = host.data();
  return used;
}

FfnWeights ffnWeights(const moert_ffn_desc_t &desc, int64_t stack) {
  bool gated = desc.kind == MOERT_FFN_GATED;
  int64_t panel = stack * desc.ffn * desc.hidden;
  FfnWeights w;
  w.kind = desc.kind;
  w.activation = desc.activation;
  w.hidden = desc.hidden;
  w.ffn = desc.ffn;
  w.wGate = tensor(desc.w_gate, panel, gated ? "w_gate" : "w1");
  w.wUp = tensor(desc.w_up, panel, "w_up");
  w.wDown = tensor(desc.w_down, panel, gated ? "w_down" : "w2");
  w.b1 = tensor(desc.b1, stack * desc.ffn, "b1");
  w.b2 = tensor(desc.b2, stack * desc.hidden, "b2");
  return w;
}

PackedFfnWeights packedWeights(const moert_packed_ffn_desc_t &desc,
                               int64_t stack, const char *what) {
  cpu::checkFloatView(desc.w_gate_up, stack * 2 * desc.ffn * desc.hidden,
                      what);
  cpu::checkFloatView(desc.w_down, stack * desc.hidden * desc.ffn, what);
  PackedFfnWeights w;
  w.activation = desc.activation;
  w.hidden = desc.hidden;
  w.ffn = desc.ffn;
  w.wGateUp = tensor(desc.w_gate_up, stack * 2 * desc.ffn * desc.hidden,
                     "w_gate_up");
  w.wDown = tensor(desc.w_down, stack * desc.hidden * desc.ffn, "w_down");
  return w;
}

// Waits for the stream through the communicators of a collective: a failed
// peer gives MOERT_ABORTED, a hang MOERT_TIMEOUT. While capturing nothing
// runs yet: the graph remembers them and its replay waits instead.
void awaitCollective(moert_context_t ctx,
                     const std::vector<nccl::Communicator *> &comms) {
  Process &p = process(ctx);
  if (p.captureComms) {
    for (nccl::Communicator *c : comms)
      if (std::find(p.captureComms->begin(), p.captureComms->end(), c) ==
          p.captureComms->end())
        p.captureComms->push_back(c);
    return;
  }
  nccl::Communicator::waitAll(comms, p.stream);
}

// Runs a collective's enqueue, then awaits it.
template <typename Enqueue>
void collective(moert_context_t ctx, nccl::Communicator &comm,
                Enqueue &&enqueue) {
  enqueue(kernels(ctx).stream());
  awaitCollective(ctx, {&comm});
}

// out[count] = sum over j < terms of blocks[j * count, +count), in fp32 in
// order, rounded once to dtype (the sliced from_experts sum of the CPU
// backend).
void sumBlocks(Context &k, const char *blocks, moert_dtype_t dtype,
               int64_t count, int64_t terms, char *out) {
  size_t blockBytes = count * moert_dtype_size(dtype);
  MutableTensor sum{k.scratch(Scratch::Output, count * sizeof(float)),
                    MOERT_F32};
  convert(k, Tensor{blocks, dtype}, sum, count);
  for (int64_t j = 1; j < terms; ++j)
    add(k, sum, Tensor{blocks + j * blockBytes, dtype}, sum, count);
  convert(k, sum, MutableTensor{out, dtype}, count);
}

} // namespace

void api::createWorld(moert_world_t world) {
  const moert_world_desc_t &desc = world->desc;
  auto p = std::make_unique<Process>();
  p->info = launch::discoverRankFromProcessEnv();
  launch::checkMesh(p->info, desc.nodes, desc.gpus_per_node);
  p->timeoutMs = desc.collective_timeout_ms > 0 ? desc.collective_timeout_ms
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
  require(p->info.localRank < devices || devices == 1, "rank ", p->info.rank,
          " (", p->info.source, " launch) has local rank ", p->info.localRank,
          " but this process sees ", devices, " CUDA devices");
  p->device = devices == 1 ? 0 : p->info.localRank;
  MOERT_CUDA_CHECK(cudaSetDevice(p->device));
  MOERT_CUDA_CHECK(cudaStreamCreateWithFlags(&p->stream, cudaStreamNonBlocking));
  p->context = std::make_unique<Context>(p->stream);
  p->world = nccl::Communicator::createWorld(p->info, p->timeoutMs);
  world->device = std::move(p);
}

void api::runWorld(moert_world_t world, moert_rank_fn_t fn, void *user) {
  Process &p = static_cast<Process &>(*world->device);
  MOERT_CUDA_CHECK(cudaSetDevice(p.device)); // the device is per thread
  moert_context_s ctx;
  ctx.world = world;
  ctx.rank = p.info.rank;
  std::string message;
  moert_status_t status = cpu::runRankBody(&ctx, fn, user, message);
  // Peers waiting on this rank see it through NCCL (or their timeout).
  if (status != MOERT_OK)
    fail(status, "rank ", ctx.rank, " failed: ", message);
  // Outstanding kernels and collectives: their errors belong to this run.
  p.world->wait(p.stream);
  p.context->synchronize();
}

void api::bufferAlloc(moert_context_t ctx, size_t bytes,
                      moert_buffer_t *outBuffer) {
  kernels(ctx).forbidInCapture("moert_buffer_alloc",
                               "allocate buffers before capturing");
  auto buffer = std::make_unique<moert_buffer_s>();
  // cudaErrorMemoryAllocation maps to MOERT_OUT_OF_MEMORY.
  MOERT_CUDA_CHECK(cudaMalloc(&buffer->data, std::max<size_t>(bytes, 1)));
  buffer->bytes = bytes;
  *outBuffer = buffer.release();
}

void api::bufferFree(moert_context_t ctx, moert_buffer_t buffer) {
  // Kernels still reading the buffer are ordered before the free by the
  // device; cudaFree synchronises. Deferred while capturing or while a
  // graph lives (Context::release).
  cudaError_t status = kernels(ctx).release(buffer->data);
  delete buffer;
  if (status != cudaSuccess)
    setLastError(std::string("moert_buffer_free: cudaFree: ") +
                 cudaGetErrorString(status));
}

void api::bufferUpload(moert_context_t ctx, moert_view_t dst, const void *src,
                       int64_t count) {
  kernels(ctx).forbidInCapture(
      "moert_buffer_upload",
      "a replay would read the host memory again; upload before replaying");
  if (count == 0)
    return;
  Context &k = kernels(ctx);
  size_t bytes = count * moert_dtype_size(dst.dtype);
  MOERT_CUDA_CHECK(cudaMemcpyAsync(cpu::viewData(dst, count, "dst"), src, bytes,
                                   cudaMemcpyHostToDevice, k.stream()));
  // The caller may reuse src once we return.
  MOERT_CUDA_CHECK(cudaStreamSynchronize(k.stream()));
}

void api::bufferDownload(moert_context_t ctx, void *dst, moert_view_t src,
                         int64_t count) {
  kernels(ctx).forbidInCapture("moert_buffer_download",
                               "the values do not exist until a replay");
  Context &k = kernels(ctx);
  if (count > 0)
    MOERT_CUDA_CHECK(cudaMemcpyAsync(dst, cpu::viewData(src, count, "src"),
                                     count * moert_dtype_size(src.dtype),
                                     cudaMemcpyDeviceToHost, k.stream()));
  // Also reports bad routing found by earlier kernels.
  k.synchronize();
}

void api::bufferFill(moert_context_t ctx, moert_view_t dst, int64_t count,
                     double value) {
  // The element's bytes exactly as the CPU backend writes them.
  char element[8];
  size_t size = moert_dtype_size(dst.dtype);
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
  fill(kernels(ctx), cpu::viewData(dst, count, "dst"), size, element, count);
}

void api::bufferCopy(moert_context_t ctx, moert_view_t src, moert_view_t dst,
                     int64_t count) {
  Context &k = kernels(ctx);
  if (src.dtype == dst.dtype) {
    if (count > 0)
      MOERT_CUDA_CHECK(cudaMemcpyAsync(
          cpu::viewData(dst, count, "dst"), cpu::viewData(src, count, "src"),
          count * moert_dtype_size(src.dtype), cudaMemcpyDeviceToDevice,
          k.stream()));
    return;
  }
  // The device conversion goes through fp32, exact only between floats.
  if (!isFloatType(src.dtype) || !isFloatType(dst.dtype))
    fail(MOERT_UNSUPPORTED, "moert_buffer_copy on CUDA converts between f32, "
                            "f16 and bf16 only, not ",
         dtypeName(src.dtype), " to ", dtypeName(dst.dtype));
  convert(k, tensor(src, count, "src"), mutableTensor(dst, count, "dst"),
          count);
}

void api::router(moert_context_t ctx, moert_view_t x, moert_view_t wg,
                 moert_view_t bias, moert_view_t logits, int64_t tokens,
                 int64_t hidden, int64_t experts) {
  cuda::router(kernels(ctx), tensor(x, tokens * hidden, "x"),
               tensor(wg, experts * hidden, "wg"), tensor(bias, experts, "bias"),
               typed<float>(logits, tokens * experts, "logits"), tokens, hidden,
               experts);
}

void api::gate(moert_context_t ctx, const moert_gate_config_t &cfg,
               moert_view_t logits, moert_view_t correctionBias, int64_t tokens,
               moert_view_t ids, moert_view_t weights, moert_view_t slots,
               moert_view_t counts, int64_t *capacity) {
  Context &k = kernels(ctx);
  if (cfg.capacity_factor == 0.0 && cfg.static_capacity == 0)
    k.forbidInCapture("moert_gate",
                      "a dropless gate without static_capacity reads C = max "
                      "count back to the host (compile with "
                      "static-capacity=1)");
  int64_t choices = tokens * cfg.top_k;
  *capacity = cuda::gate(
      k, cfg, floatLogits(k, logits, tokens * cfg.experts),
      tensor(correctionBias, cfg.experts, "correction_bias"), tokens,
      typed<int32_t>(ids, choices, "ids"),
      typed<float>(weights, choices, "weights"),
      typed<int32_t>(slots, choices, "slots"),
      typed<int32_t>(counts, cfg.experts, "counts"));
}

void api::gateScores(moert_context_t ctx, const moert_gate_config_t &cfg,
                     moert_view_t logits, int64_t tokens, moert_view_t scores) {
  Context &k = kernels(ctx);
  int64_t count = tokens * cfg.experts;
  cuda::gateScores(k, cfg, floatLogits(k, logits, count), tokens,
                   typed<float>(scores, count, "scores"));
}

void api::gateSelect(moert_context_t ctx, const moert_gate_config_t &cfg,
                     moert_view_t scores, moert_view_t correctionBias,
                     int64_t tokens, moert_view_t ids, moert_view_t weights) {
  int64_t choices = tokens * cfg.top_k;
  cuda::gateSelect(kernels(ctx), cfg,
                   typed<const float>(scores, tokens * cfg.experts, "scores"),
                   tensor(correctionBias, cfg.experts, "correction_bias"),
                   tokens, typed<int32_t>(ids, choices, "ids"),
                   typed<float>(weights, choices, "weights"));
}

void api::gateSlots(moert_context_t ctx, const moert_gate_config_t &cfg,
                    moert_view_t ids, moert_view_t weights, int64_t tokens,
                    moert_view_t slots, moert_view_t counts,
                    int64_t *capacity) {
  kernels(ctx).forbidInCapture("moert_gate_slots",
                               "it checks its ids on the host; capture the "
                               "fused moert_gate");
  int64_t choices = tokens * cfg.top_k;
  *capacity = cuda::gateSlots(
      kernels(ctx), cfg, typed<const int32_t>(ids, choices, "ids"),
      typed<const float>(weights, choices, "weights"), tokens,
      typed<int32_t>(slots, choices, "slots"),
      typed<int32_t>(counts, cfg.experts, "counts"));
}

void api::gateNormalize(moert_context_t ctx, const moert_gate_config_t &cfg,
                        moert_view_t slots, int64_t tokens,
                        moert_view_t weights) {
  int64_t choices = tokens * cfg.top_k;
  cuda::gateNormalize(kernels(ctx), cfg,
                      typed<const int32_t>(slots, choices, "slots"), tokens,
                      typed<float>(weights, choices, "weights"));
}

void api::dispatch(moert_context_t ctx, moert_view_t x, moert_view_t ids,
                   moert_view_t slots, moert_view_t buf, int64_t tokens,
                   int64_t hidden, int64_t topK, int64_t experts,
                   int64_t capacity) {
  int64_t choices = tokens * topK;
  cuda::dispatch(kernels(ctx), tensor(x, tokens * hidden, "x"),
                 typed<const int32_t>(ids, choices, "ids"),
                 typed<const int32_t>(slots, choices, "slots"),
                 mutableTensor(buf, experts * capacity * hidden, "buf"), tokens,
                 hidden, topK, experts, capacity);
}

void api::combine(moert_context_t ctx, moert_view_t y, moert_view_t ids,
                  moert_view_t slots, moert_view_t weights, moert_view_t addend,
                  moert_view_t out, int64_t tokens, int64_t hidden,
                  int64_t topK, int64_t experts, int64_t capacity) {
  int64_t choices = tokens * topK;
  cuda::combine(kernels(ctx), tensor(y, experts * capacity * hidden, "y"),
                typed<const int32_t>(ids, choices, "ids"),
                typed<const int32_t>(slots, choices, "slots"),
                typed<const float>(weights, choices, "weights"),
                tensor(addend, tokens * hidden, "addend"),
                mutableTensor(out, tokens * hidden, "out"), tokens, hidden,
                topK, experts, capacity);
}

void api::fusedCombine(moert_context_t ctx, moert_view_t y, moert_view_t ids,
                       moert_view_t slots, moert_view_t weights,
                       moert_view_t mlpOut, moert_view_t wc, moert_view_t bc,
                       moert_view_t shared, moert_view_t wSg, moert_view_t x,
                       moert_view_t addend, moert_view_t out, int64_t tokens,
                       int64_t hidden, int64_t topK, int64_t experts,
                       int64_t capacity) {
  int64_t choices = tokens * topK, rows = tokens * hidden;
  cuda::fusedCombine(
      kernels(ctx), tensor(y, experts * capacity * hidden, "y"),
      typed<const int32_t>(ids, choices, "ids"),
      typed<const int32_t>(slots, choices, "slots"),
      typed<const float>(weights, choices, "weights"),
      tensor(mlpOut, rows, "mlp_out"), tensor(wc, 2 * hidden, "wc"),
      tensor(bc, 2, "bc"), tensor(shared, rows, "shared"),
      tensor(wSg, hidden, "w_sg"), tensor(x, rows, "x"),
      tensor(addend, rows, "addend"), mutableTensor(out, rows, "out"), tokens,
      hidden, topK, experts, capacity);
}

void api::experts(moert_context_t ctx, const moert_ffn_desc_t &ffn,
                  moert_view_t in, moert_view_t out, moert_view_t rows,
                  int64_t experts, int64_t capacity, int64_t blocks) {
  std::vector<int32_t> host;
  Rows used = usedRows(ctx, rows, experts * blocks, host);
  int64_t count = experts * capacity * ffn.hidden;
  cuda::experts(kernels(ctx), ffnWeights(ffn, experts),
                tensor(in, count, "in"), mutableTensor(out, count, "out"),
                used, experts, capacity, blocks);
}

void api::expertsLinear(moert_context_t ctx, moert_view_t w, moert_view_t in,
                        moert_view_t out, moert_view_t rows, int64_t experts,
                        int64_t capacity, int64_t blocks, int64_t n,
                        int64_t k) {
  std::vector<int32_t> host;
  Rows used = usedRows(ctx, rows, experts * blocks, host);
  cuda::expertsLinear(kernels(ctx), tensor(w, experts * n * k, "w"),
                      tensor(in, experts * capacity * k, "in"),
                      mutableTensor(out, experts * capacity * n, "out"), used,
                      experts, capacity, blocks, n, k);
}

void api::activation(moert_context_t ctx, moert_activation_t activation,
                     moert_view_t x, moert_view_t out, int64_t count) {
  cuda::activation(kernels(ctx), activation, tensor(x, count, "x"),
                   mutableTensor(out, count, "out"), count);
}

void api::multiply(moert_context_t ctx, moert_view_t a, moert_view_t b,
                   moert_view_t out, int64_t count) {
  cuda::multiply(kernels(ctx), tensor(a, count, "a"), tensor(b, count, "b"),
                 mutableTensor(out, count, "out"), count);
}

void api::fusedExperts(moert_context_t ctx, const moert_packed_ffn_desc_t &ffn,
                       moert_view_t in, moert_view_t out, moert_view_t rows,
                       int64_t experts, int64_t capacity, int64_t blocks,
                       const moert_packed_ffn_desc_t *shared,
                       moert_view_t sharedX, moert_view_t sharedOut,
                       int64_t tokens) {
  std::vector<int32_t> host;
  Rows used = usedRows(ctx, rows, experts * blocks, host);
  PackedFfnWeights routed = packedWeights(ffn, experts, "experts' weights");
  PackedFfnWeights sharedWeights;
  if (shared)
    sharedWeights = packedWeights(*shared, 1, "shared expert's weights");
  int64_t count = experts * capacity * ffn.hidden;
  int64_t sharedCount = shared ? tokens * ffn.hidden : 0;
  MutableTensor sharedResult;
  if (shared)
    sharedResult = mutableTensor(sharedOut, sharedCount, "shared_out");
  cuda::fusedExperts(kernels(ctx), routed, tensor(in, count, "in"),
                     mutableTensor(out, count, "out"), used, experts,
                     capacity, blocks, shared ? &sharedWeights : nullptr,
                     tensor(sharedX, sharedCount, "shared_x"), sharedResult,
                     tokens);
}

void api::denseFfn(moert_context_t ctx, const moert_ffn_desc_t &ffn,
                   moert_view_t x, moert_view_t out, int64_t tokens) {
  int64_t count = tokens * ffn.hidden;
  cuda::denseFfn(kernels(ctx), ffnWeights(ffn, 1), tensor(x, count, "x"),
                 mutableTensor(out, count, "out"), tokens);
}

void api::residualMix(moert_context_t ctx, moert_view_t x, moert_view_t wc,
                      moert_view_t bc, moert_view_t moeOut,
                      moert_view_t mlpOut, moert_view_t out, int64_t tokens,
                      int64_t hidden) {
  int64_t count = tokens * hidden;
  cuda::residualMix(kernels(ctx), tensor(x, count, "x"),
                    tensor(wc, 2 * hidden, "wc"), tensor(bc, 2, "bc"),
                    tensor(moeOut, count, "moe_out"),
                    tensor(mlpOut, count, "mlp_out"),
                    mutableTensor(out, count, "out"), tokens, hidden);
}

void api::sharedAdd(moert_context_t ctx, moert_view_t routed,
                    moert_view_t shared, moert_view_t x, moert_view_t wSg,
                    moert_view_t out, int64_t tokens, int64_t hidden) {
  int64_t count = tokens * hidden;
  bool gated = cpu::isPresent(wSg);
  cuda::sharedAdd(kernels(ctx), tensor(routed, count, "routed"),
                  tensor(shared, count, "shared"),
                  gated ? tensor(x, count, "x") : Tensor{},
                  tensor(wSg, hidden, "w_sg"), mutableTensor(out, count, "out"),
                  tokens, hidden);
}

void api::add(moert_context_t ctx, moert_view_t a, moert_view_t b,
              moert_view_t out, int64_t count) {
  cuda::add(kernels(ctx), tensor(a, count, "a"), tensor(b, count, "b"),
            mutableTensor(out, count, "out"), count);
}

void api::groupCreate(moert_context_t ctx, const std::vector<int32_t> &ranks,
                      moert_group_t *outGroup) {
  kernels(ctx).forbidInCapture("moert_group_create",
                               "ncclCommSplit cannot be captured; create "
                               "groups before capturing");
  Process &p = process(ctx);
  auto group = std::make_unique<moert_group_s>();
  group->world = ctx->world;
  group->ranks = ranks;
  group->member = static_cast<int32_t>(
      std::find(ranks.begin(), ranks.end(), ctx->rank) - ranks.begin());
  // ncclCommSplit is collective over the world: the groups of one call
  // partition it, each named by its lowest rank, members ordered as listed.
  int32_t color = *std::min_element(ranks.begin(), ranks.end());
  auto device = std::make_unique<Group>();
  device->comm = p.world->split(color, group->member);
  require(device->comm->size() == static_cast<int32_t>(ranks.size()) &&
              device->comm->rank() == group->member,
          "group of ", ranks.size(), " ranks led by rank ", color,
          ": the ranks' lists disagree (the NCCL split gave ",
          device->comm->size(), " members); on CUDA every rank of the world "
          "creates its group in the same call, the lists partitioning the "
          "world");
  group->device = std::move(device);
  *outGroup = group.release();
}

void api::barrier(moert_context_t ctx, moert_group_t group) {
  // An all-reduce of one word: NCCL has no barrier.
  nccl::Communicator &comm = *deviceGroup(group).comm;
  void *word = kernels(ctx).scratch(Scratch::Totals, sizeof(int32_t));
  collective(ctx, comm, [&](cudaStream_t stream) {
    MOERT_CUDA_CHECK(cudaMemsetAsync(word, 0, sizeof(int32_t), stream));
    comm.allReduce(word, word, 1, MOERT_I32, MOERT_REDUCE_SUM, stream);
  });
}

void api::allReduce(moert_context_t ctx, moert_group_t group,
                    moert_reduce_op_t op, moert_view_t send, moert_view_t recv,
                    int64_t count) {
  if (count == 0)
    return;
  nccl::Communicator &comm = *deviceGroup(group).comm;
  collective(ctx, comm, [&](cudaStream_t stream) {
    comm.allReduce(cpu::viewData(send, count, "send"),
                   cpu::viewData(recv, count, "recv"), count, send.dtype, op,
                   stream);
  });
}

void api::allGather(moert_context_t ctx, moert_group_t group,
                    moert_view_t send, moert_view_t recv, int64_t count) {
  if (count == 0)
    return;
  nccl::Communicator &comm = *deviceGroup(group).comm;
  int64_t members = static_cast<int64_t>(group->ranks.size());
  collective(ctx, comm, [&](cudaStream_t stream) {
    comm.allGather(cpu::viewData(send, count, "send"),
                   cpu::viewData(recv, count * members, "recv"), count,
                   send.dtype, stream);
  });
}

void api::reduceScatter(moert_context_t ctx, moert_group_t group,
                        moert_view_t send, moert_view_t recv, int64_t count) {
  if (count == 0)
    return;
  nccl::Communicator &comm = *deviceGroup(group).comm;
  int64_t members = static_cast<int64_t>(group->ranks.size());
  collective(ctx, comm, [&](cudaStream_t stream) {
    comm.reduceScatter(cpu::viewData(send, count * members, "send"),
                       cpu::viewData(recv, count, "recv"), count, send.dtype,
                       stream);
  });
}

void api::allReduceI64(moert_context_t ctx, moert_group_t group,
                       moert_reduce_op_t op, int64_t *value) {
  kernels(ctx).forbidInCapture("moert_all_reduce_i64",
                               "its result is a host value");
  nccl::Communicator &comm = *deviceGroup(group).comm;
  auto *word = static_cast<int64_t *>(
      kernels(ctx).scratch(Scratch::Totals, sizeof(int64_t)));
  collective(ctx, comm, [&](cudaStream_t stream) {
    MOERT_CUDA_CHECK(cudaMemcpyAsync(word, value, sizeof(int64_t),
                                     cudaMemcpyHostToDevice, stream));
    comm.allReduce(word, word, 1, MOERT_I64, op, stream);
  });
  // Only after the awaited collective: a copy into pageable memory blocks
  // the host until the stream gets there, out of reach of the timeout.
  MOERT_CUDA_CHECK(cudaMemcpyAsync(value, word, sizeof(int64_t),
                                   cudaMemcpyDeviceToHost,
                                   kernels(ctx).stream()));
}

void api::allToAll(moert_context_t ctx, moert_group_t group,
                   moert_a2a_direction_t direction,
                   moert_a2a_algorithm_t algorithm, moert_view_t send,
                   moert_view_t recv, int64_t expertsLocal, int64_t capacity,
                   int64_t hidden, int64_t slices) {
  Group &g = deviceGroup(group);
  Context &k = kernels(ctx);
  int32_t members = static_cast<int32_t>(group->ranks.size());
  nccl::Extents x{members, group->member, expertsLocal, capacity, hidden};
  bool toExperts = direction == MOERT_A2A_TO_EXPERTS;
  int64_t rows = capacity * hidden;
  int64_t peerChunk = expertsLocal * rows; // one shard's rows, in elements
  int64_t expertSide = members * peerChunk;
  int64_t tokenSide = members / slices * peerChunk;
  const char *in = static_cast<const char *>(
      cpu::viewData(send, toExperts ? tokenSide : expertSide, "send"));
  char *out = cpu::viewData(recv, toExperts ? expertSide : tokenSide, "recv");
  if (rows == 0)
    return;
  size_t elementBytes = moert_dtype_size(send.dtype);

  if (algorithm == MOERT_A2A_FLAT) {
    nccl::Exchange plan =
        slices == 1
            ? nccl::flatAllToAll(direction, x)
            : nccl::slicedAllToAll(direction, x, static_cast<int32_t>(slices));
    if (toExperts || slices == 1) {
      collective(ctx, *g.comm, [&](cudaStream_t stream) {
        g.comm->exchange(plan, in, out, send.dtype, stream);
      });
      return;
    }
    // from_experts: the slice holders' partials land in [T][E][C][H].
    auto *partials = static_cast<char *>(
        k.scratch(Scratch::Hidden, slices * tokenSide * elementBytes));
    collective(ctx, *g.comm, [&](cudaStream_t stream) {
      g.comm->exchange(plan, in, partials, send.dtype, stream);
    });
    sumBlocks(k, partials, send.dtype, tokenSide, slices, out);
    return;
  }

  // Hierarchical: the chunk exchange of runtime/nccl through node and
  // same-local-rank splits of the group, made on first use (collective
  // over the group, like the all-to-all itself).
  NodeLayout layout =
      nodeLayout(group->ranks, ctx->world->desc.gpus_per_node);
  if (!g.intraNode) {
    kernels(ctx).forbidInCapture(
        "moert_all_to_all", "the hierarchical exchange makes its node splits "
                            "on first use; run one step directly first");
    g.intraNode = g.comm->split(group->member / layout.perNode,
                                group->member % layout.perNode);
    g.interNode = g.comm->split(group->member % layout.perNode,
                                group->member / layout.perNode);
  }
  void *staging =
      k.scratch(Scratch::Input, 3 * expertSide * elementBytes);
  auto exchange = [&](moert_a2a_direction_t way, const void *from, void *to) {
    nccl::hierarchicalAllToAll(*g.intraNode, *g.interNode, way, x,
                               layout.nodes, layout.perNode, from, to, staging,
                               send.dtype, k.stream());
    // Its sends and receives are on the two splits: watch both.
    awaitCollective(ctx, {g.intraNode.get(), g.interNode.get()});
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
                                       in + q / slices * chunkBytes,
                                       chunkBytes, cudaMemcpyDeviceToDevice,
                                       k.stream()));
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

void api::storeWeights(moert_context_t ctx, const void *host, moert_view_t dst,
                       int64_t offset, int64_t count) {
  kernels(ctx).forbidInCapture("moert_weights_load",
                               "load weights before capturing");
  moert_view_t at = dst;
  at.offset += offset;
  bufferUpload(ctx, at, host, count);
}

// A captured step: the instantiated graph and the communicators its
// collectives use.
struct moert_graph_s {
  cudaGraphExec_t exec = nullptr;
  std::vector<nccl::Communicator *> comms;
};

void api::graphCapture(moert_context_t ctx, moert_rank_fn_t fn, void *user,
                       moert_graph_t *outGraph) {
  Process &p = process(ctx);
  Context &k = *p.context;
  auto graph = std::make_unique<moert_graph_s>();
  graph->comms.push_back(p.world.get());
  // Thread-local mode: only this thread's unsafe calls break the capture.
  MOERT_CUDA_CHECK(
      cudaStreamBeginCapture(k.stream(), cudaStreamCaptureModeThreadLocal));
  k.beginCapture();
  p.captureComms = &graph->comms;
  std::string message;
  moert_status_t status = cpu::runRankBody(ctx, fn, user, message);
  p.captureComms = nullptr;
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
  *outGraph = graph.release();
}

void api::graphReplay(moert_context_t ctx, moert_graph_t graph) {
  Process &p = process(ctx);
  MOERT_CUDA_CHECK(cudaGraphLaunch(graph->exec, p.stream));
  nccl::Communicator::waitAll(graph->comms, p.stream);
  // Bad routing met by the graph's kernels.
  p.context->synchronize();
}

void api::graphDestroy(moert_context_t ctx, moert_graph_t graph) {
  // Teardown: statuses have nowhere to go but the last error.
  cudaGraphExecDestroy(graph->exec);
  delete graph;
  try {
    kernels(ctx).graphDestroyed();
  } catch (const Error &e) {
    setLastError(std::string("moert_graph_destroy: ") + e.what());
  }
}
