//===- bench/gpu_layer/GpuLayerBench.cu - One MoE layer on a GPU ----------===//
//
// moe-bench-gpu-layer [--dry-run] [--shapes-json] [--torch-json FILE]
//                     [--out-dir DIR] [--warmup N] [--iters N]
//
// One MoE layer forward through the C ABI (runtime/moert.h) on a
// MOERT_BACKEND_CUDA world of one GPU: router -> moert_gate (capacity factor
// 1.25) -> dispatch -> moert_experts (SwiGLU, or plain GELU for PR-MoE) ->
// shared experts / the PR-MoE residual MLP (moert_dense_ffn) -> fused
// combine. (moert_fused_experts, which folds the shared experts into the
// grouped GEMMs, is declared but not implemented yet: switch when it is.)
// Shapes and token counts: LayerCost.h. Time: the median of --iters forwards
// after --warmup, each between CUDA events on the legacy default stream with a
// device synchronisation before the stop event, so the context's own stream is
// included whatever its flags. Roofline floors from this GPU: device-to-device
// cudaMemcpy bandwidth and the cuBLAS bf16 GEMM peak (8192^3, fp32
// accumulation). --torch-json reads bench/gpu_layer/torch_moe.py's times and
// shows ours / PyTorch eager.
// --dry-run prints the shapes/flops/bytes table and touches no GPU;
// --shapes-json prints the shapes for torch_moe.py (one definition).
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

// cuBLAS bf16 GEMM, 8192^3, fp32 accumulation: flop/s.
double measureGemmPeak(const Options &o) {
  const int n = 8192;
  size_t bytes = size_t(n) * n * 2;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  CUDA_CHECK(cudaMalloc(&c, bytes));
  CUDA_CHECK(cudaMemset(a, 0, bytes));
  CUDA_CHECK(cudaMemset(b, 0, bytes));
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

constexpr double kCapacityFactor = 1.25;

int64_t capacityOf(const MoeLayerShape &s, int64_t tokens) {
  double c =
      std::ceil(double(s.topK * tokens) / double(s.experts) * kCapacityFactor);
  return std::max<int64_t>(1, int64_t(c));
}

// Random bf16 values in [-scale, scale), tiled from one block so that
// DeepSeek-V3's 22 GB of experts upload in seconds (values do not change
// the time; the router's, which do, are all distinct).
class RandomFill {
public:
  explicit RandomFill(moert_context_t ctx) : ctx_(ctx), block_(1 << 22) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (uint16_t &v : block_) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      float f = float((s >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      v = uint16_t(bits >> 16);
    }
  }
  moert_view_t alloc(int64_t elements, double scale) {
    moert_buffer_t buffer = nullptr;
    MOERT_CHECK(moert_buffer_alloc(ctx_, size_t(elements) * 2, &buffer));
    buffers_.push_back(buffer);
    moert_view_t view = moert_make_view(buffer, 0, MOERT_BF16);
    std::vector<uint16_t> scaled(block_.size());
    for (size_t i = 0; i < block_.size(); ++i) {
      uint32_t bits = uint32_t(block_[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      f *= float(scale);
      std::memcpy(&bits, &f, 4);
      scaled[i] = uint16_t(bits >> 16);
    }
    for (int64_t at = 0; at < elements; at += int64_t(scaled.size())) {
      moert_view_t part = view;
      part.offset = at;
      MOERT_CHECK(moert_buffer_upload(
          ctx_, part, scaled.data(),
          std::min<int64_t>(int64_t(scaled.size()), elements - at)));
    }
    return view;
  }
  moert_view_t scratch(int64_t elements, moert_dtype_t dtype) {
    moert_buffer_t buffer = nullptr;
    MOERT_CHECK(moert_buffer_alloc(
        ctx_, size_t(elements) * moert_dtype_size(dtype), &buffer));
    buffers_.push_back(buffer);
    return moert_make_view(buffer, 0, dtype);
  }
  ~RandomFill() {
    for (moert_buffer_t b : buffers_)
      moert_buffer_free(ctx_, b);
  }

private:
  moert_context_t ctx_;
  std::vector<uint16_t> block_;
  std::vector<moert_buffer_t> buffers_;
};

struct LayerRun {
  const MoeLayerShape *shape;
  const std::vector<int64_t> *tokens;
  const Options *options;
  std::vector<double> seconds; // per token count
};

moert_status_t runLayer(moert_context_t ctx, void *user) {
  LayerRun &run = *static_cast<LayerRun *>(user);
  const MoeLayerShape &s = *run.shape;
  const int64_t E = s.experts, H = s.hidden, F = s.ffn, k = s.topK;
  const int64_t maxT =
      *std::max_element(run.tokens->begin(), run.tokens->end());
  const int64_t maxC = capacityOf(s, maxT);
  RandomFill mem(ctx);
  double wScale = 1.0 / std::sqrt(double(H));
  moert_view_t wRouter = mem.alloc(E * H, 1.0);
  moert_view_t correction =
      s.correctionBias ? mem.scratch(E, MOERT_F32) : moert_absent_view();
  if (s.correctionBias)
    MOERT_CHECK(moert_buffer_fill(ctx, correction, E, 0.0));
  moert_ffn_desc_t experts{s.gated ? MOERT_FFN_GATED : MOERT_FFN_PLAIN,
                           s.gated ? MOERT_ACT_SILU : MOERT_ACT_GELU,
                           H,
                           F,
                           {},
                           {},
                           {},
                           {},
                           {}};
  moert_ffn_desc_t shared{
      MOERT_FFN_GATED, MOERT_ACT_SILU, H, 0, {}, {}, {}, {}, {}};
  moert_ffn_desc_t residual{
      MOERT_FFN_PLAIN, MOERT_ACT_GELU, H, s.residualFfn, {}, {}, {}, {}, {}};
  moert_view_t wc = moert_absent_view(), bc = moert_absent_view();
  experts.w_gate = mem.alloc(E * F * H, wScale);
  experts.w_up = s.gated ? mem.alloc(E * F * H, wScale) : moert_absent_view();
  experts.w_down = mem.alloc(E * H * F, 1.0 / std::sqrt(double(F)));
  experts.b1 = s.gated ? moert_absent_view() : mem.alloc(E * F, 0.01);
  experts.b2 = s.gated ? moert_absent_view() : mem.alloc(E * H, 0.01);
  // Several shared experts act as one of their summed width.
  if (s.sharedExperts) {
    shared.ffn = s.sharedExperts * s.sharedFfn;
    shared.w_gate = mem.alloc(shared.ffn * H, wScale);
    shared.w_up = mem.alloc(shared.ffn * H, wScale);
    shared.w_down = mem.alloc(H * shared.ffn, 1.0 / std::sqrt(double(F)));
    shared.b1 = shared.b2 = moert_absent_view();
  }
  if (s.residualFfn) {
    residual.w_gate = mem.alloc(s.residualFfn * H, wScale);
    residual.w_up = moert_absent_view();
    residual.w_down =
        mem.alloc(H * s.residualFfn, 1.0 / std::sqrt(double(s.residualFfn)));
    residual.b1 = mem.alloc(s.residualFfn, 0.01);
    residual.b2 = mem.alloc(H, 0.01);
    wc = mem.alloc(2 * H, wScale);
    bc = mem.alloc(2, 0.01);
  }
  moert_view_t x = mem.alloc(maxT * H, 1.0);
  moert_view_t out = mem.scratch(maxT * H, MOERT_BF16);
  moert_view_t logits = mem.scratch(maxT * E, MOERT_F32);
  moert_view_t ids = mem.scratch(maxT * k, MOERT_I32);
  moert_view_t slots = mem.scratch(maxT * k, MOERT_I32);
  moert_view_t weights = mem.scratch(maxT * k, MOERT_F32);
  moert_view_t counts = mem.scratch(E, MOERT_I32);
  moert_view_t buf = mem.scratch(E * maxC * H, MOERT_BF16);
  moert_view_t y = mem.scratch(E * maxC * H, MOERT_BF16);
  moert_view_t sharedOut =
      s.sharedExperts ? mem.scratch(maxT * H, MOERT_BF16) : moert_absent_view();
  moert_view_t mlpOut =
      s.residualFfn ? mem.scratch(maxT * H, MOERT_BF16) : moert_absent_view();

  moert_gate_config_t gate;
  moert_gate_config_init(&gate, int32_t(E), int32_t(k));
  gate.capacity_factor = kCapacityFactor;
  gate.min_capacity = 1;
  if (s.groups > 1) { // DeepSeek-V3
    gate.score_func = MOERT_SCORE_SIGMOID;
    gate.n_group = int32_t(s.groups);
    gate.topk_group = int32_t(s.keptGroups);
    gate.group_score = MOERT_GROUP_SCORE_TOP2_SUM;
    gate.norm = MOERT_NORM_SELECTED;
    gate.norm_epsilon = 1e-20f;
    gate.routed_scaling_factor = 2.5f;
  } else if (k > 1) {
    gate.norm = MOERT_NORM_SELECTED;
  }

  for (int64_t T : *run.tokens) {
    const int64_t C = capacityOf(s, T);
    auto forward = [&] {
      int64_t capacity = 0;
      MOERT_CHECK(
          moert_router(ctx, x, wRouter, moert_absent_view(), logits, T, H, E));
      MOERT_CHECK(moert_gate(ctx, &gate, logits, correction, T, ids, weights,
                             slots, counts, &capacity));
      if (capacity != C)
        die("moert_gate returned capacity " + std::to_string(capacity) +
            ", the benchmark sized buffers for " + std::to_string(C));
      MOERT_CHECK(moert_dispatch(ctx, x, ids, slots, buf, T, H, k, E, C));
      MOERT_CHECK(moert_experts(ctx, &experts, buf, y, counts, E, C, 1));
      if (s.sharedExperts)
        MOERT_CHECK(moert_dense_ffn(ctx, &shared, x, sharedOut, T));
      if (s.residualFfn)
        MOERT_CHECK(moert_dense_ffn(ctx, &residual, x, mlpOut, T));
      MOERT_CHECK(moert_fused_combine(ctx, y, ids, slots, weights, mlpOut, wc,
                                      bc, sharedOut, moert_absent_view(), x, x,
                                      out, T, H, k, E, C));
    };
    run.seconds.push_back(
        timeMedian(run.options->warmup, run.options->iters, forward));
  }
  return MOERT_OK;
}

//===----------------------------------------------------------------------===//
// Output
//===----------------------------------------------------------------------===//

std::string shapesJson(const std::vector<MoeLayerShape> &shapes,
                       const std::vector<int64_t> &tokens) {
  std::ostringstream os;
  os << "{\"tokens\": [";
  for (size_t i = 0; i < tokens.size(); ++i)
    os << (i ? ", " : "") << tokens[i];
  os << "],\n \"capacity_factor\": " << kCapacityFactor << ",\n \"shapes\": [";
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
          "[--torch-json FILE] [--out-dir DIR] [--warmup N] [--iters N]");
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
    std::printf("%s", shapesJson(shapes, tokens).c_str());
    return 0;
  }
  if (o.dryRun) {
    std::printf("one MoE layer forward, bf16; compulsory bytes, GEMM flops "
                "(bench/gpu_layer/LayerCost.h)\n%s",
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
  char line[320];
  std::snprintf(line, sizeof line,
                "# GPU layer forward: %s, %s\n"
                "# measured floors: copy %.1f GB/s (D2D memcpy, read+write), "
                "bf16 GEMM %.1f TFLOP/s (cuBLAS 8192^3)\n"
                "# median of %d after %d warm-up; capacity factor %.2f\n",
                prop.name, date, copyBps / 1e9, gemmFlops / 1e12, o.iters,
                o.warmup, kCapacityFactor);
  table += line;
  std::snprintf(line, sizeof line, "%-14s %7s %11s %11s %7s %9s %9s %11s %9s\n",
                "model", "tokens", "time us", "floor us", "floor%", "TFLOP/s",
                "GB/s", "torch us", "torch/us");
  table += line;

  moert_world_desc_t desc = {MOERT_BACKEND_CUDA, 1, 1, 0};
  for (const MoeLayerShape &s : shapes) {
    moert_world_t world = nullptr;
    MOERT_CHECK(moert_world_create(&desc, &world));
    LayerRun run{&s, &tokens, &o, {}};
    MOERT_CHECK(moert_world_run(world, runLayer, &run));
    moert_world_destroy(world);
    for (size_t i = 0; i < tokens.size(); ++i) {
      LayerCost c = layerCost(s, tokens[i]);
      double t = run.seconds[i];
      double floor = rooflineFloorSeconds(c, copyBps, gemmFlops);
      auto torch = torchUs.find({s.name, tokens[i]});
      std::string torchCols = "        -         -";
      if (torch != torchUs.end()) {
        char cols[64];
        std::snprintf(cols, sizeof cols, "%11.1f %9.2f", torch->second,
                      torch->second / (t * 1e6));
        torchCols = cols;
      }
      std::snprintf(line, sizeof line,
                    "%-14s %7lld %11.1f %11.1f %6.1f%% %9.2f %9.1f %s\n",
                    s.name.c_str(), (long long)tokens[i], t * 1e6, floor * 1e6,
                    100 * floor / t, c.flops / t / 1e12, c.bytes / t / 1e9,
                    torchCols.c_str());
      table += line;
    }
  }
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
