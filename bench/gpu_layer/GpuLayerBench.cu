//===- bench/gpu_layer/GpuLayerBench.cu - One MoE layer on a GPU ----------===//
//
// moe-bench-gpu-layer [--dry-run] [--shapes-json] [--torch-json FILE]
//                     [--capacity-factor X] [--graphs]
//                     [--out-dir DIR] [--warmup N] [--iters N]
//
// One MoE layer forward through the C ABI (runtime/moert.h) on a
// MOERT_BACKEND_CUDA world of one GPU: the calls `moe-opt --moe-compile`
// emits for the layer at ep = tp = 1 (forward(); describeCalls() prints
// them): router -> moert_gate -> dispatch -> moert_fused_experts (packed
// [E, 2F, H] gate|up, DeepSeek-V3's shared expert folded in as one more
// problem) or, for PR-MoE's plain GELU experts, moert_experts + the residual
// MLP's moert_dense_ffn -> moert_fused_combine (shared expert / residual mix
// and the layer residual x + ... in one pass).
// Routing is dropless (capacity factor 0, the compiler's default for the HF
// models, and what torch_moe.py computes); --capacity-factor X > 0 drops
// choices past C = ceil(k*T/E*X). --graphs adds, for T <= 64, the time of a
// captured forward replayed (moert_graph_capture/replay) at a static C.
// Shapes and token counts: LayerCost.h. Time: the median of --iters forwards
// after --warmup, each between CUDA events on the legacy default stream with
// a device synchronisation before the stop event, so the context's own
// stream is included whatever its flags. Roofline floors from this GPU:
// device-to-device cudaMemcpy bandwidth and the cuBLAS bf16 GEMM peak
// (8192^3, fp32 accumulation), applied to the routing the gate produced.
// --torch-json reads bench/gpu_layer/torch_moe.py's times and shows
// PyTorch eager / ours.
// --dry-run prints what runs and the shapes/flops/bytes table, touching no
// GPU; --shapes-json prints the shapes for torch_moe.py (one definition).
//
//===----------------------------------------------------------------------===//

#include "bench/gpu_layer/LayerCost.h"

#include "runtime/moert.h"
#include "runtime/weights/Json.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace moe::bench;

namespace {

[[noreturn]] void die(const std::string &message) {
  std::fprintf(stderr, "moe-bench-gpu-layer: error: %s\n", message.c_str());
  std::exit(1);
}

void checkCuda(cudaError_t status, const char *call) {
  if (status != cudaSuccess)
    die(std::string(call) + ": " + cudaGetErrorName(status) + ": " +
        cudaGetErrorString(status));
}
#define CUDA_CHECK(call) checkCuda((call), #call)

void checkCublas(cublasStatus_t status, const char *call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    die(std::string(call) + ": " + cublasGetStatusName(status) + ": " +
        cublasGetStatusString(status));
}
#define CUBLAS_CHECK(call) checkCublas((call), #call)

struct Options {
  bool dryRun = false;
  bool shapesJson = false;
  double capacityFactor = 0; // 0: dropless
  bool graphs = false;
  std::string torchJson;
  std::string outDir = MOE_BENCH_RESULTS_DIR;
  int warmup = 3;
  int iters = 20;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Times `body` (which enqueues device work) with CUDA events; median in s.
template <typename Body> double timeMedian(int warmup, int iters, Body body) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < warmup; ++i)
    body();
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> seconds;
  for (int i = 0; i < iters; ++i) {
    CUDA_CHECK(cudaEventRecord(start, 0));
    body();
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaEventRecord(stop, 0));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    seconds.push_back(ms / 1e3);
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return median(seconds);
}

// Device-to-device copy of 1 GiB: read + write bytes per second.
double measureCopyBandwidth(const Options &o) {
  size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  CUDA_CHECK(cudaMemset(a, 1, bytes));
  double s = timeMedian(o.warmup, o.iters, [&] {
    CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
  });
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  return 2.0 * double(bytes) / s;
}

// n bf16 values uniform in [-scale, scale) from a xorshift stream.
void randomBf16(uint16_t *out, int64_t n, double scale, uint64_t &state) {
  for (int64_t i = 0; i < n; ++i) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    float f = float((state >> 11) * (1.0 / 9007199254740992.0) * 2 - 1) *
              float(scale);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    out[i] = uint16_t(bits >> 16);
  }
}

// cuBLAS bf16 GEMM, 8192^3, fp32 accumulation: flop/s. Random operands, as
// the layer's: on zeros the tensor cores draw less power and the GPU may
// clock higher than the layer's GEMMs ever can.
double measureGemmPeak(const Options &o) {
  const int n = 8192;
  size_t bytes = size_t(n) * n * 2;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  CUDA_CHECK(cudaMalloc(&c, bytes));
  {
    std::vector<uint16_t> host(size_t(n) * n);
    uint64_t state = 0x2545F4914F6CDD1Dull;
    randomBf16(host.data(), int64_t(host.size()), 1.0, state);
    CUDA_CHECK(cudaMemcpy(a, host.data(), bytes, cudaMemcpyHostToDevice));
    randomBf16(host.data(), int64_t(host.size()), 1.0, state);
    CUDA_CHECK(cudaMemcpy(b, host.data(), bytes, cudaMemcpyHostToDevice));
  }
  cublasHandle_t handle;
  CUBLAS_CHECK(cublasCreate(&handle));
  float alpha = 1, beta = 0;
  double s = timeMedian(o.warmup, o.iters, [&] {
    CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha,
                              a, CUDA_R_16BF, n, b, CUDA_R_16BF, n, &beta, c,
                              CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  });
  CUBLAS_CHECK(cublasDestroy(handle));
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  CUDA_CHECK(cudaFree(c));
  return 2.0 * double(n) * n * n / s;
}

//===----------------------------------------------------------------------===//
// The layer through the C ABI
//===----------------------------------------------------------------------===//

void check(moert_status_t status, const char *call) {
  if (status != MOERT_OK)
    die(std::string(call) + ": " + moert_status_name(status) + ": " +
        moert_last_error());
}
#define MOERT_CHECK(call) check((call), #call)

// Graph columns only for decode-size steps, where launches dominate.
constexpr int64_t kGraphMaxTokens = 64;

// Device buffers of one shape's run, freed with it.
class DeviceMemory {
public:
  explicit DeviceMemory(moert_context_t ctx) : ctx_(ctx) {}
  moert_context_t context() const { return ctx_; }
  DeviceMemory(const DeviceMemory &) = delete;
  DeviceMemory &operator=(const DeviceMemory &) = delete;
  ~DeviceMemory() {
    for (moert_buffer_t b : buffers_)
      moert_buffer_free(ctx_, b);
  }

  // Random bf16 in [-scale, scale). Tensors up to kFresh elements (x, the
  // router, biases, shared expert, residual MLP) get fresh values, so every
  // token routes on its own; larger ones (the stacked experts) repeat one
  // chunk, so that DeepSeek-V3's 22 GB upload in seconds (the values do not
  // change the GEMMs' time).
  moert_view_t random(int64_t elements, double scale) {
    moert_view_t view = scratch(elements, MOERT_BF16);
    std::vector<uint16_t> chunk(std::min(elements, kChunk));
    for (int64_t at = 0; at < elements; at += kChunk) {
      int64_t n = std::min(kChunk, elements - at);
      if (at == 0 || elements <= kFresh)
        randomBf16(chunk.data(), n, scale, state_);
      moert_view_t part = view;
      part.offset = at;
      MOERT_CHECK(moert_buffer_upload(ctx_, part, chunk.data(), n));
    }
    return view;
  }
  moert_view_t scratch(int64_t elements, moert_dtype_t dtype) {
    moert_buffer_t buffer = nullptr;
    MOERT_CHECK(moert_buffer_alloc(
        ctx_, size_t(std::max<int64_t>(elements, 1)) * moert_dtype_size(dtype),
        &buffer));
    buffers_.push_back(buffer);
    return moert_make_view(buffer, 0, dtype);
  }
  void release(moert_view_t view) {
    auto it = std::find(buffers_.begin(), buffers_.end(), view.buffer);
    if (it == buffers_.end())
      return;
    moert_buffer_free(ctx_, *it);
    buffers_.erase(it);
  }

private:
  static constexpr int64_t kChunk = int64_t(1) << 22;
  static constexpr int64_t kFresh = int64_t(1) << 26;

  moert_context_t ctx_;
  uint64_t state_ = 0x9E3779B97F4A7C15ull;
  std::vector<moert_buffer_t> buffers_;
};

// The gate moe-opt --moe-compile emits for each family (the HF importer's
// configs; PR-MoE top-1 keeps the softmax weight).
moert_gate_config_t gateConfig(const MoeLayerShape &s, double capacityFactor) {
  moert_gate_config_t gate;
  moert_gate_config_init(&gate, int32_t(s.experts), int32_t(s.topK));
  gate.capacity_factor = capacityFactor;
  gate.drop_order = MOERT_DROP_CHOICE_MAJOR;
  if (s.groups > 1) { // DeepSeek-V3
    gate.score_func = MOERT_SCORE_SIGMOID;
    gate.n_group = int32_t(s.groups);
    gate.topk_group = int32_t(s.keptGroups);
    gate.group_score = MOERT_GROUP_SCORE_TOP2_SUM;
    gate.norm = MOERT_NORM_SELECTED;
    gate.norm_epsilon = 1e-20f;
    gate.routed_scaling_factor = 2.5f;
  } else if (s.topK > 1) {
    gate.norm = MOERT_NORM_SELECTED;
  }
  return gate;
}

// A captured forward cannot read a dropless C back (moert_graph_capture):
// as moe-compile static-capacity=1 (moe-run --cuda-graphs), a dropless gate
// gets the static C = T, its bound, so the result is the same.
moert_gate_config_t graphGate(moert_gate_config_t gate, int64_t tokens) {
  if (gate.capacity_factor == 0)
    gate.static_capacity = tokens;
  return gate;
}

// One shape's weights and buffers on the device.
struct Layer {
  const MoeLayerShape *shape = nullptr;
  moert_view_t wRouter{}, correction{}, wc{}, bc{};
  moert_packed_ffn_desc_t experts{}, shared{}; // gated
  moert_ffn_desc_t plainExperts{}, residual{}; // PR-MoE
  moert_view_t x{}, out{}, logits{}, ids{}, slots{}, weights{}, counts{};
  moert_view_t sharedOut{}, mlpOut{};
  // Expert-major [E, C, H] in and out of the experts, C <= capacityRows.
  moert_view_t dispatched{}, expertOut{};
  int64_t capacityRows = 0;
};

Layer makeLayer(DeviceMemory &mem, const MoeLayerShape &s, int64_t maxT) {
  const int64_t E = s.experts, H = s.hidden, F = s.ffn, k = s.topK;
  const double inScale = 1.0 / std::sqrt(double(H));
  const moert_view_t none = moert_absent_view();
  Layer l;
  l.shape = &s;
  // At a trained router's scale (logits of order 1): at scale 1, DeepSeek's
  // sigmoid saturates to exactly 1 and its ties send every token to the
  // lowest-index experts.
  l.wRouter = mem.random(E * H, inScale);
  l.correction = none;
  if (s.correctionBias) {
    l.correction = mem.scratch(E, MOERT_F32);
    MOERT_CHECK(moert_buffer_fill(mem.context(), l.correction, E, 0.0));
  }
  l.wc = l.bc = none;
  if (s.gated) {
    l.experts = {MOERT_ACT_SILU, H, F, mem.random(E * 2 * F * H, inScale),
                 mem.random(E * H * F, 1.0 / std::sqrt(double(F)))};
    // Several shared experts act as one of their summed width.
    int64_t sharedF = s.sharedExperts * s.sharedFfn;
    if (sharedF)
      l.shared = {MOERT_ACT_SILU, H, sharedF,
                  mem.random(2 * sharedF * H, inScale),
                  mem.random(H * sharedF, 1.0 / std::sqrt(double(sharedF)))};
  } else {
    l.plainExperts = {MOERT_FFN_PLAIN,
                      MOERT_ACT_GELU,
                      H,
                      F,
                      mem.random(E * F * H, inScale),
                      none,
                      mem.random(E * H * F, 1.0 / std::sqrt(double(F))),
                      mem.random(E * F, 0.01),
                      mem.random(E * H, 0.01)};
  }
  if (s.residualFfn) {
    const int64_t R = s.residualFfn;
    l.residual = {MOERT_FFN_PLAIN,
                  MOERT_ACT_GELU,
                  H,
                  R,
                  mem.random(R * H, inScale),
                  none,
                  mem.random(H * R, 1.0 / std::sqrt(double(R))),
                  mem.random(R, 0.01),
                  mem.random(H, 0.01)};
    l.wc = mem.random(2 * H, inScale);
    l.bc = mem.random(2, 0.01);
  }
  l.x = mem.random(maxT * H, 1.0);
  l.out = mem.scratch(maxT * H, MOERT_BF16);
  l.logits = mem.scratch(maxT * E, MOERT_F32);
  l.ids = mem.scratch(maxT * k, MOERT_I32);
  l.slots = mem.scratch(maxT * k, MOERT_I32);
  l.weights = mem.scratch(maxT * k, MOERT_F32);
  l.counts = mem.scratch(E, MOERT_I32);
  l.sharedOut = s.sharedExperts ? mem.scratch(maxT * H, MOERT_BF16) : none;
  l.mlpOut = s.residualFfn ? mem.scratch(maxT * H, MOERT_BF16) : none;
  return l;
}

// Grows the expert-major buffers to hold C rows per expert. They follow the
// C the gate returns rather than its bound T: at DeepSeek-V3's 8192 tokens
// two [256, 8192, 7168] bf16 buffers (60 GB) beside 22 GB of weights would
// not fit an 80 GB GPU, and only the C rows passed to the calls are touched.
void ensureCapacity(DeviceMemory &mem, Layer &l, int64_t capacity) {
  if (capacity <= l.capacityRows)
    return;
  const int64_t elements = l.shape->experts * capacity * l.shape->hidden;
  mem.release(l.dispatched);
  mem.release(l.expertOut);
  l.dispatched = mem.scratch(elements, MOERT_BF16);
  l.expertOut = mem.scratch(elements, MOERT_BF16);
  l.capacityRows = capacity;
}

// One forward at `tokens`: a moert_rank_fn_t, run directly or captured.
struct Step {
  Layer *layer = nullptr;
  int64_t tokens = 0;
  moert_gate_config_t gate{};
  bool routeOnly = false; // router and gate only: learn C to size buffers
  int64_t capacity = 0;   // the C the gate returned
  std::string error;      // the call that failed, read inside the step

  moert_status_t fail(moert_status_t status, const char *callText) {
    std::string call(callText);
    error = call.substr(0, call.find('(')) + ": " + moert_status_name(status) +
            ": " + moert_last_error();
    return status;
  }
};

#define STEP_CALL(call)                                                        \
  do {                                                                         \
    if (moert_status_t status_ = (call); status_ != MOERT_OK)                  \
      return step.fail(status_, #call);                                        \
  } while (0)

// The calls of the compiled layer (describeCalls() says them in words). out
// is written apart from x (the compiled step updates x in place): the same
// kernel and bytes, and every forward routes the same x to the same C.
moert_status_t forward(moert_context_t ctx, void *user) {
  Step &step = *static_cast<Step *>(user);
  const Layer &l = *step.layer;
  const MoeLayerShape &s = *l.shape;
  const int64_t T = step.tokens, E = s.experts, H = s.hidden, k = s.topK;
  const moert_view_t none = moert_absent_view();
  int64_t C = 0;
  STEP_CALL(moert_router(ctx, l.x, l.wRouter, none, l.logits, T, H, E));
  STEP_CALL(moert_gate(ctx, &step.gate, l.logits, l.correction, T, l.ids,
                       l.weights, l.slots, l.counts, &C));
  step.capacity = C;
  if (step.routeOnly)
    return MOERT_OK;
  if (C > l.capacityRows) {
    step.error = "moert_gate returned C = " + std::to_string(C) +
                 ", the buffers hold " + std::to_string(l.capacityRows);
    return MOERT_INVALID_ARGUMENT;
  }
  STEP_CALL(moert_dispatch(ctx, l.x, l.ids, l.slots, moert_absent_view(),
                           l.dispatched, T, H, k, E, C));
  if (s.gated) {
    const bool shared = s.sharedExperts > 0;
    STEP_CALL(
        moert_fused_experts(ctx, &l.experts, l.dispatched, l.expertOut,
                            l.counts, E, C, 1, shared ? &l.shared : nullptr,
                            shared ? l.x : none, l.sharedOut, shared ? T : 0));
  } else {
    STEP_CALL(moert_experts(ctx, &l.plainExperts, l.dispatched, l.expertOut,
                            l.counts, E, C, 1));
  }
  if (s.residualFfn)
    STEP_CALL(moert_dense_ffn(ctx, &l.residual, l.x, l.mlpOut, T));
  STEP_CALL(moert_fused_combine(ctx, l.expertOut, l.ids, l.slots, l.weights,
                                l.mlpOut, l.wc, l.bc, l.sharedOut, none, l.x,
                                l.x, l.out, T, H, k, E, C));
  return MOERT_OK;
}
#undef STEP_CALL

std::string describeGate(const moert_gate_config_t &g, bool correctionBias) {
  std::ostringstream os;
  os << (g.score_func == MOERT_SCORE_SIGMOID ? "sigmoid" : "softmax");
  if (correctionBias)
    os << " + correction bias";
  if (g.n_group > 1)
    os << ", " << g.n_group << " groups keep " << g.topk_group
       << (g.group_score == MOERT_GROUP_SCORE_TOP2_SUM ? " (top-2 sum)"
                                                       : " (max)");
  os << ", top-" << g.top_k;
  if (g.norm != MOERT_NORM_NONE)
    os << ", normalized";
  if (g.routed_scaling_factor != 1.0f)
    os << ", x" << g.routed_scaling_factor;
  return os.str();
}

// forward() in words.
std::string describeCalls(const MoeLayerShape &s) {
  std::string calls = "moert_router, moert_gate (" +
                      describeGate(gateConfig(s, 0), s.correctionBias) +
                      "), moert_dispatch, ";
  if (s.gated)
    calls += "moert_fused_experts (SiLU, packed gate|up" +
             std::string(s.sharedExperts ? ", shared expert folded" : "") +
             "), ";
  else
    calls += "moert_experts (GELU, biases), ";
  if (s.residualFfn)
    calls += "moert_dense_ffn (residual MLP), ";
  calls += "moert_fused_combine (";
  if (s.residualFfn)
    calls += "residual mix, ";
  if (s.sharedExperts)
    calls += "+ shared, ";
  return calls + "+ x)";
}

// What a run times: the table header and the dry run say it (one place).
std::string describeRun(const Options &o,
                        const std::vector<MoeLayerShape> &shapes) {
  std::ostringstream os;
  if (o.capacityFactor == 0)
    os << "# routing: dropless (capacity factor 0): every one of the T*k "
          "choices is computed; moert_gate returns C = the largest expert "
          "count, read back on the host\n";
  else
    os << "# routing: capacity factor " << o.capacityFactor
       << ": C = ceil(k*T/E*" << o.capacityFactor
       << "), choices past C are dropped, not computed (torch_moe.py is "
          "dropless)\n";
  if (o.graphs)
    os << "# graph: T <= " << kGraphMaxTokens
       << ": one forward captured (moert_graph_capture) and replayed "
          "(moert_graph_replay), timed alike; its C is static: "
       << (o.capacityFactor == 0
               ? "dropless with static_capacity = T (as moe-compile "
                 "static-capacity=1), the same result"
               : "the capacity factor's")
       << "; captured, the expert GEMMs run all E*C rows of every expert "
          "(cuBLAS cannot read the counts): g.floor counts those\n";
  os << "# calls per forward (moe-opt --moe-compile, ep = tp = 1; out "
        "written apart from x):\n";
  for (const MoeLayerShape &s : shapes)
    os << "#   " << s.name << ": " << describeCalls(s) << "\n";
  return os.str();
}

// One token count of one shape.
struct Row {
  int64_t tokens = 0;
  int64_t capacity = 0;
  Routing routing;
  double seconds = 0;
  double graphSeconds = -1; // < 0: not run
  int64_t graphCapacity = 0;
};

struct LayerRun {
  const MoeLayerShape *shape;
  const std::vector<int64_t> *tokens;
  const Options *options;
  std::vector<Row> rows;
  std::string graphError; // why graphs did not run
};

void checkStep(moert_status_t status, const Step &step) {
  if (status != MOERT_OK)
    die(step.layer->shape->name + " at " + std::to_string(step.tokens) +
        " tokens: " + step.error);
}

// Routes once (untimed) so that the buffers hold the C the gate returns.
void sizeFor(moert_context_t ctx, DeviceMemory &mem, Step &step) {
  step.routeOnly = true;
  checkStep(forward(ctx, &step), step);
  step.routeOnly = false;
  ensureCapacity(mem, *step.layer, step.capacity);
}

void timeGraph(moert_context_t ctx, DeviceMemory &mem, const Step &direct,
               LayerRun &run, Row &row) {
  Step step = direct;
  step.gate = graphGate(direct.gate, direct.tokens);
  sizeFor(ctx, mem, step);
  // Once directly at the captured sizes: the runtime's scratch must not grow
  // inside a capture (its cudaMalloc would end the capture).
  checkStep(forward(ctx, &step), step);
  moert_graph_t graph = nullptr;
  if (moert_status_t status = moert_graph_capture(ctx, forward, &step, &graph);
      status != MOERT_OK) {
    run.graphError = !step.error.empty()
                         ? step.error
                         : std::string("moert_graph_capture: ") +
                               moert_status_name(status) + ": " +
                               moert_last_error();
    return;
  }
  const Options &o = *run.options;
  row.graphCapacity = step.capacity;
  row.graphSeconds = timeMedian(
      o.warmup, o.iters, [&] { MOERT_CHECK(moert_graph_replay(ctx, graph)); });
  moert_graph_destroy(ctx, graph);
}

moert_status_t runLayer(moert_context_t ctx, void *user) {
  LayerRun &run = *static_cast<LayerRun *>(user);
  const MoeLayerShape &s = *run.shape;
  const Options &o = *run.options;
  DeviceMemory mem(ctx);
  Layer layer = makeLayer(
      mem, s, *std::max_element(run.tokens->begin(), run.tokens->end()));
  for (int64_t T : *run.tokens) {
    Step step;
    step.layer = &layer;
    step.tokens = T;
    step.gate = gateConfig(s, o.capacityFactor);
    sizeFor(ctx, mem, step);
    Row row;
    row.tokens = T;
    row.seconds = timeMedian(o.warmup, o.iters,
                             [&] { checkStep(forward(ctx, &step), step); });
    row.capacity = step.capacity;
    std::vector<int32_t> counts(s.experts);
    MOERT_CHECK(
        moert_buffer_download(ctx, counts.data(), layer.counts, s.experts));
    row.routing = measuredRouting(counts);
    if (o.graphs && T <= kGraphMaxTokens && run.graphError.empty())
      timeGraph(ctx, mem, step, run, row);
    run.rows.push_back(row);
  }
  return MOERT_OK;
}

//===----------------------------------------------------------------------===//
// Output
//===----------------------------------------------------------------------===//

std::string shapesJson(const std::vector<MoeLayerShape> &shapes,
                       const std::vector<int64_t> &tokens,
                       double capacityFactor) {
  std::ostringstream os;
  os << "{\"tokens\": [";
  for (size_t i = 0; i < tokens.size(); ++i)
    os << (i ? ", " : "") << tokens[i];
  os << "],\n \"capacity_factor\": " << capacityFactor << ",\n \"shapes\": [";
  for (size_t i = 0; i < shapes.size(); ++i) {
    const MoeLayerShape &s = shapes[i];
    os << (i ? ",\n  " : "\n  ") << "{\"name\": \"" << s.name
       << "\", \"experts\": " << s.experts << ", \"hidden\": " << s.hidden
       << ", \"ffn\": " << s.ffn << ", \"top_k\": " << s.topK
       << ", \"gated\": " << (s.gated ? "true" : "false")
       << ", \"groups\": " << s.groups << ", \"kept_groups\": " << s.keptGroups
       << ", \"correction_bias\": " << (s.correctionBias ? "true" : "false")
       << ", \"shared_experts\": " << s.sharedExperts
       << ", \"shared_ffn\": " << s.sharedFfn
       << ", \"residual_ffn\": " << s.residualFfn << "}";
  }
  os << "]}\n";
  return os.str();
}

// torch_moe.py's {"results": [{"model", "tokens", "median_us"}]}.
std::map<std::pair<std::string, int64_t>, double>
readTorchTimes(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    die("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  std::map<std::pair<std::string, int64_t>, double> times;
  try {
    moert::json::Value root = moert::json::parse(text.str());
    const moert::json::Value *results = root.find("results");
    if (!results)
      die(path + " has no \"results\"");
    for (const moert::json::Value &r : results->array) {
      const moert::json::Value *model = r.find("model"),
                               *tokens = r.find("tokens"),
                               *us = r.find("median_us");
      if (!model || !tokens || !us)
        die(path + ": a result lacks model, tokens or median_us");
      times[{model->string, tokens->integer}] = us->number;
    }
  } catch (const std::exception &e) {
    die(path + ": " + e.what());
  }
  return times;
}

std::string sanitized(std::string name) {
  for (char &c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)))
      c = '-';
  return name;
}

Options parseOptions(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool hasValue = i + 1 < argc;
    if (arg == "--dry-run")
      o.dryRun = true;
    else if (arg == "--shapes-json")
      o.shapesJson = true;
    else if (arg == "--capacity-factor" && hasValue) {
      const char *text = argv[++i];
      char *end = nullptr;
      o.capacityFactor = std::strtod(text, &end);
      if (end == text || *end || !std::isfinite(o.capacityFactor) ||
          o.capacityFactor < 0)
        die(std::string("--capacity-factor wants a number >= 0, got ") + text);
    } else if (arg == "--graphs")
      o.graphs = true;
    else if (arg == "--torch-json" && hasValue)
      o.torchJson = argv[++i];
    else if (arg == "--out-dir" && hasValue)
      o.outDir = argv[++i];
    else if (arg == "--warmup" && hasValue)
      o.warmup = std::atoi(argv[++i]);
    else if (arg == "--iters" && hasValue)
      o.iters = std::atoi(argv[++i]);
    else
      die("unknown or incomplete option " + arg +
          "\nusage: moe-bench-gpu-layer [--dry-run] [--shapes-json] "
          "[--torch-json FILE] [--capacity-factor X] [--graphs] "
          "[--out-dir DIR] [--warmup N] [--iters N]");
  }
  if (o.warmup < 0 || o.iters < 1)
    die("--warmup must be >= 0 and --iters >= 1");
  return o;
}

} // namespace

int main(int argc, char **argv) {
  Options o = parseOptions(argc, argv);
  std::vector<MoeLayerShape> shapes = benchmarkShapes();
  std::vector<int64_t> tokens = benchmarkTokens();
  if (o.shapesJson) {
    std::printf("%s", shapesJson(shapes, tokens, o.capacityFactor).c_str());
    return 0;
  }
  if (o.dryRun) {
    std::printf("# one MoE layer forward, bf16; compulsory bytes, GEMM flops "
                "(bench/gpu_layer/LayerCost.h), every choice kept, touched = "
                "min(E, T*k)\n%s%s",
                describeRun(o, shapes).c_str(),
                costTable(shapes, tokens).c_str());
    return 0;
  }
  std::map<std::pair<std::string, int64_t>, double> torchUs;
  if (!o.torchJson.empty())
    torchUs = readTorchTimes(o.torchJson);

  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  double copyBps = measureCopyBandwidth(o);
  double gemmFlops = measureGemmPeak(o);
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));

  std::string table;
  char line[640];
  std::snprintf(line, sizeof line,
                "# GPU layer forward: %s, %s\n"
                "# measured floors: copy %.1f GB/s (D2D memcpy, read+write), "
                "bf16 GEMM %.1f TFLOP/s (cuBLAS 8192^3)\n"
                "# median of %d after %d warm-up\n",
                prop.name, date, copyBps / 1e9, gemmFlops / 1e12, o.iters,
                o.warmup);
  table += line;
  table += describeRun(o, shapes);
  table += "# C: the capacity the gate returned; touched, drops: experts with "
           "a kept choice and dropped choices (the gate's counts), which the "
           "floor, TFLOP/s and GB/s count (LayerCost.h)\n";
  std::snprintf(line, sizeof line,
                "%-14s %7s %6s %7s %6s %10s %10s %7s %8s %8s", "model",
                "tokens", "C", "touched", "drops", "time us", "floor us",
                "floor%", "TFLOP/s", "GB/s");
  table += line;
  if (o.graphs) {
    std::snprintf(line, sizeof line, " %10s %10s %7s", "graph us", "g.floor us",
                  "floor%");
    table += line;
  }
  std::snprintf(line, sizeof line, " %10s %10s\n", "torch us", "torch/ours");
  table += line;

  std::string notes;
  moert_world_desc_t desc = {MOERT_BACKEND_CUDA, 1, 1, 0};
  for (const MoeLayerShape &s : shapes) {
    moert_world_t world = nullptr;
    MOERT_CHECK(moert_world_create(&desc, &world));
    LayerRun run{&s, &tokens, &o, {}, {}};
    MOERT_CHECK(moert_world_run(world, runLayer, &run));
    moert_world_destroy(world);
    if (!run.graphError.empty())
      notes += "# " + s.name + ": no graph: " + run.graphError + "\n";
    for (const Row &r : run.rows) {
      LayerCost c = layerCost(s, r.tokens, r.routing);
      double t = r.seconds;
      double floor = rooflineFloorSeconds(c, copyBps, gemmFlops);
      std::snprintf(line, sizeof line,
                    "%-14s %7lld %6lld %7lld %6lld %10.1f %10.1f %6.1f%% "
                    "%8.2f %8.1f",
                    s.name.c_str(), (long long)r.tokens, (long long)r.capacity,
                    (long long)c.expertsTouched,
                    (long long)(r.tokens * s.topK - r.routing.expertRows),
                    t * 1e6, floor * 1e6, 100 * floor / t, c.flops / t / 1e12,
                    c.bytes / t / 1e9);
      table += line;
      if (o.graphs) {
        if (r.graphSeconds > 0) {
          double graphFloor = rooflineFloorSeconds(
              layerCost(s, r.tokens, capturedRouting(s, r.graphCapacity)),
              copyBps, gemmFlops);
          std::snprintf(line, sizeof line, " %10.1f %10.1f %6.1f%%",
                        r.graphSeconds * 1e6, graphFloor * 1e6,
                        100 * graphFloor / r.graphSeconds);
        } else {
          std::snprintf(line, sizeof line, " %10s %10s %7s", "-", "-", "-");
        }
        table += line;
      }
      auto torch = torchUs.find({s.name, r.tokens});
      if (torch != torchUs.end())
        std::snprintf(line, sizeof line, " %10.1f %10.2f\n", torch->second,
                      torch->second / (t * 1e6));
      else
        std::snprintf(line, sizeof line, " %10s %10s\n", "-", "-");
      table += line;
    }
  }
  table += notes;
  std::printf("%s", table.c_str());
  std::string path =
      o.outDir + "/gpu_layer-" + sanitized(prop.name) + "-" + date + ".txt";
  std::ofstream out(path);
  out << table;
  if (!out)
    die("cannot write " + path);
  std::printf("written to %s\n", path.c_str());
  return 0;
}
