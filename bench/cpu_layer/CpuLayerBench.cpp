//===- CpuLayerBench.cpp - one MoE layer on the CPU backend ---------------===//
//
// Times one MoE layer (default Mixtral-8x7B's: H 4096, F 14336, 8 SwiGLU
// experts, top-2, dropless) on one rank of the CPU backend, as moe-compile
// emits it for a gated model: router GEMM, gate, dispatch, fused expert FFN
// (moert_fused_experts, [gate | up] packed, a shared expert folded in), the
// fused combine with the shared output and the residual. Prints a table:
// median time per token count, tokens per second, the experts the gate
// touched, the weight bytes they read and the GEMM throughput; --json prints
// one JSON object per token count instead (bench/cpu_layer/cpu_layer.py).
// Weights are used as stored: there is no load-time re-layout to time.
//
// --dtype fp8: the expert (and shared) weights stay fp8 e4m3 with f32
// scales per 128 x 128 block (DeepSeek-V3 / Qwen3-FP8), run by
// moert_quantized_experts (gate and up unpacked; the shared expert as one
// more call); activations and the router bf16. With --staged 1 the routed
// experts run as gpt-oss's are lowered instead (biases, clamped SwiGLU):
// moert_quantized_experts_linear for gate, up and down into fp32 [E, C, F]
// intermediates, a moert_experts_bias_add after each, moert_swiglu_clamped.
//
// usage: moe-bench-cpu-layer [--dtype bf16|f32|fp8] [--tokens 1,16,128,1024]
//          [--runs N] [--min-seconds S] [--hidden H] [--ffn F] [--experts E]
//          [--top-k K] [--shared-ffn FS] [--threads N] [--json 1]
//          [--staged 1] [--evict-mb MB] [--flush-weights 1] [--read-floor 1]
//
// Cold runs, as in a model whose other layers evict this one's experts
// between two of its runs: decode then reads them from DRAM, not from a
// cache that repeated runs of one layer warmed. Before each timed run,
// --evict-mb MB reads MB of other memory (twice the last-level cache), and
// --flush-weights 1 flushes every weight of the layer from the caches
// (CacheFlush.h): reading alone leaves part of a set read many times.
//
// --read-floor 1: the memory-read floor of each row, measured with it. Each
// timed layer run alternates with a plain read of the same bytes the layer
// reads (the router, the touched experts' weights, the shared expert), cold
// in the same way, split over as many threads as the rank has, in the two
// ways of FloorReader in turn (the faster one's median counts): this VM's
// DRAM bandwidth moves by tens of percent within minutes, so a floor
// measured apart from the row says little about it.
//
//===----------------------------------------------------------------------===//

#include "CacheFlush.h"
#include "bench/common/FloorReader.h"
#include "runtime/moert.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using moe_bench::FloorReader;
using moe_bench::MemorySpan;

namespace {

struct Options {
  int64_t hidden = 4096, ffn = 14336, experts = 8, topK = 2;
  int64_t sharedFfn = 0; // width of one shared expert; 0: none
  moert_dtype_t dtype = MOERT_BF16; // activations (and weights unless fp8)
  bool fp8 = false;
  bool staged = false; // fp8 only: gpt-oss's stage calls
  std::vector<int64_t> tokens = {1, 16, 128, 1024};
  int runs = 0; // 0: enough runs for --min-seconds per row, at least 3
  double minSeconds = 1.0;    // of timed runs per row
  int64_t evictMegabytes = 0; // read before each timed run; 0: none
  bool flushWeights = false;  // flush the weights before each timed run
  bool readFloor = false;     // time a plain read of the row's weights too
  int32_t threads = 0; // per rank; 0: the runtime's default
  bool json = false;
};

struct Row {
  int64_t tokens;
  double seconds; // median
  int runs;
  int64_t touched; // experts with at least one token
  size_t flushedBytes; // before each run (--flush-weights)
  size_t readBytes;    // the weights the run reads (readSpans)
  double floorSeconds; // plain read of readBytes (--read-floor, FloorReader)
};

/// A weight's bytes in host memory; `expert` -1: read whatever the routing.
struct WeightSpan {
  const char *address;
  size_t bytes;
  int64_t expert;
};

struct Bench {
  Options options;
  int32_t threads; // the rank's compute threads
  std::vector<Row> rows;
  // The layer's weights, per expert where stacked: what --flush-weights
  // flushes and --read-floor reads.
  std::vector<WeightSpan> weights;
};

#define CHECK(call)                                                            \
  do {                                                                         \
    moert_status_t status_ = (call);                                           \
    if (status_ != MOERT_OK) {                                                 \
      std::fprintf(stderr, "%s failed: %s: %s\n", #call,                       \
                   moert_status_name(status_), moert_last_error());           \
      return status_;                                                          \
    }                                                                          \
  } while (0)

/// Fills a view with uniform values in [-scale, scale] from a seeded stream.
moert_status_t fillRandom(moert_context_t ctx, moert_view_t view,
                          int64_t count, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-scale, scale);
  std::vector<float> host(count);
  for (float &v : host)
    v = uniform(rng);
  moert_buffer_t staging;
  CHECK(moert_buffer_alloc(ctx, count * sizeof(float), &staging));
  moert_view_t f32 = moert_make_view(staging, 0, MOERT_F32);
  CHECK(moert_buffer_upload(ctx, f32, host.data(), count));
  CHECK(moert_buffer_copy(ctx, f32, view, count));
  moert_buffer_free(ctx, staging);
  return MOERT_OK;
}

/// fp8 e4m3 bytes of magnitude 2^-2 to 2^2 (exponents 5 to 9), random
/// sign and mantissa: finite, and products that keep the layer finite.
moert_status_t fillFp8(moert_context_t ctx, moert_view_t view, int64_t count,
                       uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> host(count);
  for (uint8_t &v : host) {
    uint32_t bits = rng();
    v = static_cast<uint8_t>((bits & 0x80) | ((5 + bits % 5) << 3) |
                             ((bits >> 8) & 0x7));
  }
  return moert_buffer_upload(ctx, view, host.data(), count);
}

constexpr int64_t fp8Block = 128;
int64_t blocksOf(int64_t rows, int64_t cols) {
  return ((rows + fp8Block - 1) / fp8Block) *
         ((cols + fp8Block - 1) / fp8Block);
}

/// Registers `count` elements of a weight view: stacked over `experts`
/// (equal slices, expert 0 first) or, with experts 0, read by every run.
moert_status_t addWeight(moert_context_t ctx, Bench &bench, moert_view_t view,
                         int64_t count, int64_t experts = 0) {
  void *address = nullptr;
  CHECK(moert_buffer_host_address(ctx, view, &address));
  size_t bytes = count * moert_dtype_size(view.dtype);
  if (experts == 0) {
    bench.weights.push_back({static_cast<const char *>(address), bytes, -1});
    return MOERT_OK;
  }
  size_t slice = bytes / experts;
  for (int64_t e = 0; e < experts; ++e)
    bench.weights.push_back(
        {static_cast<const char *>(address) + e * slice, slice, e});
  return MOERT_OK;
}

/// Before each cold run: reads --evict-mb of its own memory, as a model's
/// other layers would, then flushes the registered weights.
class ColdStart {
public:
  ColdStart(const Options &o, const std::vector<WeightSpan> &weights)
      : data_((static_cast<size_t>(o.evictMegabytes) << 20) / sizeof(uint64_t),
              1) {
    if (o.flushWeights)
      for (const WeightSpan &span : weights)
        weights_.emplace_back(span.address, span.bytes);
  }
  bool enabled() const { return !data_.empty() || !weights_.empty(); }
  size_t flushedBytes() const {
    size_t bytes = 0;
    for (const auto &[address, size] : weights_)
      bytes += size;
    return bytes;
  }
  moert_status_t run() {
    uint64_t sum = 0;
    for (uint64_t v : data_)
      sum += v;
    sink_ = sum;
    for (const auto &[address, size] : weights_)
      if (moe_bench_flush(address, size) != 0) {
        std::fprintf(stderr, "--flush-weights: this CPU has no cache flush "
                             "instruction for user code\n");
        return MOERT_UNSUPPORTED;
      }
    return MOERT_OK;
  }

private:
  std::vector<uint64_t> data_;
  std::vector<std::pair<const void *, size_t>> weights_;
  volatile uint64_t sink_ = 0;
};

/// Times `layer(tokens)` per token count into bench.rows. Cold
/// (--evict-mb, --flush-weights), each timed run starts with the weights
/// out of the caches, and at most coldRuns runs are timed.
template <typename Layer>
moert_status_t timeRows(moert_context_t ctx, Bench &bench, moert_view_t counts,
                        Layer layer) {
  const Options &o = bench.options;
  constexpr size_t coldRuns = 25;
  ColdStart cold(o, bench.weights);
  FloorReader reader(o.readFloor ? bench.threads : 1);
  for (int64_t tokens : o.tokens) {
    CHECK(layer(tokens)); // warm-up: page in weights and buffers
    std::vector<int32_t> perExpert(o.experts);
    CHECK(moert_buffer_download(ctx, perExpert.data(), counts, o.experts));
    int64_t touched = 0;
    for (int32_t c : perExpert)
      touched += c > 0;
    // What the layer reads: the router and shared weights and the touched
    // experts' (their weights as registered: gate | up, then down, and any
    // fp8 scales and biases).
    std::vector<MemorySpan> readSpans;
    size_t readBytes = 0;
    for (const WeightSpan &span : bench.weights)
      if (span.expert < 0 || perExpert[span.expert] > 0) {
        readSpans.push_back({span.address, span.bytes});
        readBytes += span.bytes;
      }
    std::vector<double> samples;
    double timed = 0;
    while (true) {
      if (o.readFloor) {
        if (cold.enabled())
          CHECK(cold.run());
        reader.sample(readSpans);
      }
      if (cold.enabled())
        CHECK(cold.run());
      auto t0 = std::chrono::steady_clock::now();
      CHECK(layer(tokens));
      samples.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count());
      timed += samples.back();
      bool enough = samples.size() >= 3 &&
                    (timed > o.minSeconds ||
                     (cold.enabled() && samples.size() >= coldRuns));
      if (o.runs ? static_cast<int>(samples.size()) >= o.runs : enough)
        break;
    }
    auto median = [](std::vector<double> &v) {
      if (v.empty())
        return 0.0;
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      return v[v.size() / 2];
    };
    bench.rows.push_back({tokens, median(samples),
                          static_cast<int>(samples.size()), touched,
                          cold.flushedBytes(), readBytes, reader.floor()});
  }
  return MOERT_OK;
}

/// The buffers a run allocates, freed when it returns.
struct OwnedBuffers {
  moert_context_t ctx;
  std::vector<moert_buffer_t> buffers;
  ~OwnedBuffers() {
    for (moert_buffer_t buffer : buffers)
      moert_buffer_free(ctx, buffer);
  }
  moert_status_t alloc(int64_t count, moert_dtype_t dtype, moert_view_t *view) {
    moert_buffer_t buffer = nullptr;
    moert_status_t status =
        moert_buffer_alloc(ctx, count * moert_dtype_size(dtype), &buffer);
    if (status == MOERT_OK)
      buffers.push_back(buffer);
    *view = moert_make_view(buffer, 0, dtype);
    return status;
  }
};

/// The layer with fp8 block-quantized expert (and shared) weights.
moert_status_t runFp8(moert_context_t ctx, Bench &bench) {
  const Options &o = bench.options;
  const int64_t h = o.hidden, f = o.ffn, e = o.experts, k = o.topK,
                fs = o.sharedFfn;
  const int64_t maxTokens = *std::max_element(o.tokens.begin(), o.tokens.end());
  OwnedBuffers owned{ctx, {}};
  auto alloc = [&](int64_t count, moert_dtype_t dtype) {
    moert_view_t view;
    owned.alloc(count, dtype, &view);
    return view;
  };
  // [E, rows, cols] fp8 and its scales, every expert.
  auto weight = [&](int64_t experts, int64_t rows, int64_t cols, uint32_t seed,
                    moert_quantized_weight_t *w) {
    w->data = alloc(experts * rows * cols, MOERT_F8_E4M3);
    int64_t scales = experts * blocksOf(rows, cols);
    w->scales = alloc(scales, MOERT_F32);
    CHECK(fillFp8(ctx, w->data, experts * rows * cols, seed));
    // The shared expert (experts 1) is read by every run.
    int64_t stacked = experts > 1 ? experts : 0;
    CHECK(addWeight(ctx, bench, w->data, experts * rows * cols, stacked));
    CHECK(addWeight(ctx, bench, w->scales, scales, stacked));
    // Unit-scale outputs: 1 / sqrt(cols) over values of magnitude ~1.
    float scale = 0.5f / std::sqrt(static_cast<float>(cols));
    std::vector<float> host(scales, scale);
    return moert_buffer_upload(ctx, w->scales, host.data(), scales);
  };
  moert_quantized_ffn_desc_t routed{MOERT_WEIGHTS_FP8_E4M3_BLOCK,
                                    fp8Block,
                                    fp8Block,
                                    MOERT_ACT_SILU,
                                    h,
                                    f,
                                    {},
                                    {},
                                    {}};
  CHECK(weight(e, f, h, 3, &routed.gate));
  CHECK(weight(e, f, h, 4, &routed.up));
  CHECK(weight(e, h, f, 5, &routed.down));
  moert_quantized_ffn_desc_t shared = routed;
  shared.ffn = fs;
  if (fs) {
    CHECK(weight(1, fs, h, 6, &shared.gate));
    CHECK(weight(1, fs, h, 7, &shared.up));
    CHECK(weight(1, h, fs, 8, &shared.down));
  }
  moert_view_t x = alloc(maxTokens * h, o.dtype),
               out = alloc(maxTokens * h, o.dtype), wg = alloc(e * h, o.dtype),
               logits = alloc(maxTokens * e, MOERT_F32),
               ids = alloc(maxTokens * k, MOERT_I32),
               weights = alloc(maxTokens * k, MOERT_F32),
               slots = alloc(maxTokens * k, MOERT_I32),
               counts = alloc(e, MOERT_I32),
               dispatched = alloc(e * maxTokens * h, o.dtype),
               expertOut = alloc(e * maxTokens * h, o.dtype),
               sharedOut = alloc(maxTokens * h, o.dtype);
  CHECK(fillRandom(ctx, x, maxTokens * h, 1.0f, 1));
  CHECK(fillRandom(ctx, wg, e * h, 1.0f / std::sqrt(static_cast<float>(h)), 2));
  CHECK(addWeight(ctx, bench, wg, e * h));
  moert_gate_config_t gate;
  moert_gate_config_init(&gate, static_cast<int32_t>(e),
                         static_cast<int32_t>(k));
  gate.norm = MOERT_NORM_SELECTED;
  moert_view_t absent = moert_absent_view();
  // The staged form's fp32 intermediates and biases.
  moert_view_t hGate = absent, hUp = absent, bGate = absent, bUp = absent,
               bDown = absent;
  if (o.staged) {
    hGate = alloc(e * maxTokens * f, MOERT_F32);
    hUp = alloc(e * maxTokens * f, MOERT_F32);
    bGate = alloc(e * f, MOERT_F32);
    bUp = alloc(e * f, MOERT_F32);
    bDown = alloc(e * h, MOERT_F32);
    CHECK(fillRandom(ctx, bGate, e * f, 0.1f, 9));
    CHECK(fillRandom(ctx, bUp, e * f, 0.1f, 10));
    CHECK(fillRandom(ctx, bDown, e * h, 0.1f, 11));
    CHECK(addWeight(ctx, bench, bGate, e * f, e));
    CHECK(addWeight(ctx, bench, bUp, e * f, e));
    CHECK(addWeight(ctx, bench, bDown, e * h, e));
  }
  auto stagedExperts = [&](int64_t capacity) -> moert_status_t {
    auto linear = [&](const moert_quantized_weight_t &w, moert_view_t in,
                      moert_view_t out, int64_t n, int64_t kk) {
      return moert_quantized_experts_linear(
          ctx, MOERT_WEIGHTS_FP8_E4M3_BLOCK, fp8Block, fp8Block, w.data,
          w.scales, in, out, counts, e, capacity, 1, n, kk);
    };
    CHECK(linear(routed.gate, dispatched, hGate, f, h));
    CHECK(moert_experts_bias_add(ctx, bGate, hGate, hGate, counts, e, capacity,
                                 1, f));
    CHECK(linear(routed.up, dispatched, hUp, f, h));
    CHECK(
        moert_experts_bias_add(ctx, bUp, hUp, hUp, counts, e, capacity, 1, f));
    CHECK(moert_swiglu_clamped(ctx, hGate, hUp, hGate, e * capacity * f, 1.702f,
                               7.0f));
    CHECK(linear(routed.down, hGate, expertOut, h, f));
    CHECK(moert_experts_bias_add(ctx, bDown, expertOut, expertOut, counts, e,
                                 capacity, 1, h));
    return MOERT_OK;
  };
  return timeRows(ctx, bench, counts, [&](int64_t tokens) -> moert_status_t {
    int64_t capacity = 0;
    CHECK(moert_router(ctx, x, wg, absent, logits, tokens, h, e));
    CHECK(moert_gate(ctx, &gate, logits, absent, tokens, ids, weights, slots,
                     counts, &capacity));
    CHECK(moert_dispatch(ctx, x, ids, slots, moert_absent_view(), dispatched,
                         tokens, h, k, e, capacity));
    if (o.staged)
      CHECK(stagedExperts(capacity));
    else
      CHECK(moert_quantized_experts(ctx, &routed, dispatched, expertOut, counts,
                                    e, capacity, 1));
    if (fs)
      CHECK(moert_quantized_experts(ctx, &shared, x, sharedOut, absent, 1,
                                    tokens, 1));
    CHECK(moert_fused_combine(ctx, expertOut, ids, slots, weights, absent,
                              absent, absent, fs ? sharedOut : absent, absent,
                              absent, x, out, tokens, h, k, e, capacity));
    return MOERT_OK;
  });
}

moert_status_t run(moert_context_t ctx, void *user) {
  Bench &bench = *static_cast<Bench *>(user);
  const Options &o = bench.options;
  const int64_t h = o.hidden, f = o.ffn, e = o.experts, k = o.topK;
  const int64_t maxTokens = *std::max_element(o.tokens.begin(), o.tokens.end());
  OwnedBuffers owned{ctx, {}};
  auto alloc = [&](int64_t count, moert_dtype_t dtype, moert_view_t *view) {
    return owned.alloc(count, dtype, view);
  };

  const int64_t fs = o.sharedFfn;
  moert_view_t x, out, wg, wGateUp, wDown, logits, ids, weights, slots,
      counts, dispatched, expertOut, sGateUp, sDown, sharedOut;
  CHECK(alloc(maxTokens * h, o.dtype, &x));
  CHECK(alloc(maxTokens * h, o.dtype, &out));
  CHECK(alloc(e * h, o.dtype, &wg));
  if (o.fp8)
    return runFp8(ctx, bench);
  CHECK(alloc(e * 2 * f * h, o.dtype, &wGateUp));
  CHECK(alloc(e * h * f, o.dtype, &wDown));
  if (fs) {
    CHECK(alloc(2 * fs * h, o.dtype, &sGateUp));
    CHECK(alloc(h * fs, o.dtype, &sDown));
    CHECK(alloc(maxTokens * h, o.dtype, &sharedOut));
  }
  CHECK(alloc(maxTokens * e, MOERT_F32, &logits));
  CHECK(alloc(maxTokens * k, MOERT_I32, &ids));
  CHECK(alloc(maxTokens * k, MOERT_F32, &weights));
  CHECK(alloc(maxTokens * k, MOERT_I32, &slots));
  CHECK(alloc(e, MOERT_I32, &counts));
  // Dropless: an expert gets at most every token once.
  CHECK(alloc(e * maxTokens * h, o.dtype, &dispatched));
  CHECK(alloc(e * maxTokens * h, o.dtype, &expertOut));
  // Kaiming-like scales keep activations finite through the layer.
  float wScale = 1.0f / std::sqrt(static_cast<float>(h));
  CHECK(fillRandom(ctx, x, maxTokens * h, 1.0f, 1));
  CHECK(fillRandom(ctx, wg, e * h, wScale, 2));
  CHECK(addWeight(ctx, bench, wg, e * h));
  CHECK(addWeight(ctx, bench, wGateUp, e * 2 * f * h, e));
  CHECK(addWeight(ctx, bench, wDown, e * h * f, e));
  // Expert by expert: a host staging copy of one expert, never of all.
  for (int64_t i = 0; i < e; ++i) {
    CHECK(fillRandom(ctx, moert_make_view(wGateUp.buffer, i * 2 * f * h,
                                          o.dtype),
                     2 * f * h, wScale, 3 + 2 * i));
    CHECK(fillRandom(ctx, moert_make_view(wDown.buffer, i * h * f,
                                          o.dtype),
                     h * f, 1.0f / std::sqrt(static_cast<float>(f)), 4 + 2 * i));
  }
  if (fs) {
    CHECK(fillRandom(ctx, sGateUp, 2 * fs * h, wScale, 1001));
    CHECK(fillRandom(ctx, sDown, h * fs,
                     1.0f / std::sqrt(static_cast<float>(fs)), 1002));
    CHECK(addWeight(ctx, bench, sGateUp, 2 * fs * h));
    CHECK(addWeight(ctx, bench, sDown, h * fs));
  }

  moert_gate_config_t gate;
  moert_gate_config_init(&gate, static_cast<int32_t>(e),
                         static_cast<int32_t>(k));
  gate.norm = MOERT_NORM_SELECTED;
  moert_packed_ffn_desc_t ffn{MOERT_ACT_SILU, h, f, wGateUp, wDown};
  moert_packed_ffn_desc_t shared{MOERT_ACT_SILU, h, fs, moert_absent_view(),
                                 moert_absent_view()};
  if (fs) {
    shared.w_gate_up = sGateUp;
    shared.w_down = sDown;
  }
  moert_view_t absent = moert_absent_view();

  auto layer = [&](int64_t tokens) -> moert_status_t {
    int64_t capacity = 0;
    CHECK(moert_router(ctx, x, wg, absent, logits, tokens, h, e));
    CHECK(moert_gate(ctx, &gate, logits, absent, tokens, ids, weights, slots,
                     counts, &capacity));
    CHECK(moert_dispatch(ctx, x, ids, slots, moert_absent_view(), dispatched,
                         tokens, h, k, e, capacity));
    CHECK(moert_fused_experts(ctx, &ffn, dispatched, expertOut, counts, e,
                              capacity, 1, fs ? &shared : nullptr,
                              fs ? x : absent, fs ? sharedOut : absent,
                              fs ? tokens : 0));
    CHECK(moert_fused_combine(ctx, expertOut, ids, slots, weights, absent,
                              absent, absent, fs ? sharedOut : absent, absent,
                              absent, x, out, tokens, h, k, e, capacity));
    return MOERT_OK;
  };

  return timeRows(ctx, bench, counts, layer);
}

std::vector<int64_t> parseList(const char *text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ','))
    values.push_back(std::stoll(item));
  return values;
}

} // namespace

int main(int argc, char **argv) {
  Bench bench;
  Options &o = bench.options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--dtype") {
      o.dtype = std::strcmp(argv[i + 1], "f32") == 0 ? MOERT_F32 : MOERT_BF16;
      o.fp8 = std::strcmp(argv[i + 1], "fp8") == 0;
    } else if (flag == "--tokens")
      o.tokens = parseList(argv[i + 1]);
    else if (flag == "--runs")
      o.runs = std::atoi(argv[i + 1]);
    else if (flag == "--hidden")
      o.hidden = std::atoll(argv[i + 1]);
    else if (flag == "--ffn")
      o.ffn = std::atoll(argv[i + 1]);
    else if (flag == "--experts")
      o.experts = std::atoll(argv[i + 1]);
    else if (flag == "--top-k")
      o.topK = std::atoll(argv[i + 1]);
    else if (flag == "--shared-ffn")
      o.sharedFfn = std::atoll(argv[i + 1]);
    else if (flag == "--threads")
      o.threads = std::atoi(argv[i + 1]);
    else if (flag == "--min-seconds")
      o.minSeconds = std::atof(argv[i + 1]);
    else if (flag == "--evict-mb")
      o.evictMegabytes = std::atoll(argv[i + 1]);
    else if (flag == "--flush-weights")
      o.flushWeights = std::atoi(argv[i + 1]) != 0;
    else if (flag == "--read-floor")
      o.readFloor = std::atoi(argv[i + 1]) != 0;
    else if (flag == "--json")
      o.json = std::atoi(argv[i + 1]) != 0;
    else if (flag == "--staged")
      o.staged = std::atoi(argv[i + 1]) != 0;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "flag %s needs a value\n", argv[argc - 1]);
    return 2;
  }
  if (o.staged && !o.fp8) {
    std::fprintf(stderr, "--staged 1 needs --dtype fp8\n");
    return 2;
  }

  moert_world_desc_t desc{MOERT_BACKEND_CPU, 1, 1, 0, o.threads};
  moert_world_t world;
  if (moert_world_create(&desc, &world) != MOERT_OK) {
    std::fprintf(stderr, "benchmark failed: %s\n", moert_last_error());
    return 1;
  }
  bench.threads = moert_world_cpu_threads(world);
  if (moert_world_run(world, run, &bench) != MOERT_OK) {
    std::fprintf(stderr, "benchmark failed: %s\n", moert_last_error());
    moert_world_destroy(world);
    return 1;
  }
  const int32_t threads = bench.threads;
  moert_world_destroy(world);

  const char *dtype = o.fp8
                          ? (o.staged ? "fp8 (staged, biases, clamped)" : "fp8")
                      : o.dtype == MOERT_F32 ? "f32"
                                             : "bf16";
  if (!o.json) {
    std::printf("MoE layer on the CPU backend, 1 rank x %d thread(s): H %lld, "
                "F %lld, %lld SwiGLU experts, top-%lld, shared F %lld, "
                "dropless, %s storage\n",
                threads, (long long)o.hidden, (long long)o.ffn,
                (long long)o.experts, (long long)o.topK,
                (long long)o.sharedFfn, dtype);
    std::printf("%8s %12s %12s %8s %10s %10s", "tokens", "ms/layer", "tokens/s",
                "touched", "GB/s", "GFLOP/s");
    if (o.readFloor)
      std::printf(" %12s %8s", "floor GB/s", "%floor");
    std::printf("\n");
  }
  for (const Row &row : bench.rows) {
    // Routed expert GEMMs (3 per choice), the shared expert and the router.
    double flops = 2.0 * 3 * o.hidden * o.ffn * o.topK * row.tokens +
                   2.0 * 3 * o.hidden * o.sharedFfn * row.tokens +
                   2.0 * o.hidden * o.experts * row.tokens;
    if (o.json) {
      std::printf("{\"tokens\": %lld, \"seconds\": %.9g, \"runs\": %d, "
                  "\"touched\": %lld, \"weight_bytes\": %zu, \"flops\": "
                  "%.0f, \"threads\": %d, \"dtype\": \"%s\", "
                  "\"flushed_bytes\": %zu",
                  (long long)row.tokens, row.seconds, row.runs,
                  (long long)row.touched, row.readBytes, flops, threads, dtype,
                  row.flushedBytes);
      if (o.readFloor)
        std::printf(", \"floor_seconds\": %.9g", row.floorSeconds);
      std::printf("}\n");
    } else {
      std::printf("%8lld %12.3f %12.1f %8lld %10.1f %10.1f",
                  (long long)row.tokens, row.seconds * 1e3,
                  row.tokens / row.seconds, (long long)row.touched,
                  row.readBytes / row.seconds / 1e9, flops / row.seconds / 1e9);
      // %floor: the plain read's time over the layer's, for the same bytes.
      if (o.readFloor)
        std::printf(" %12.1f %7.0f%%", row.readBytes / row.floorSeconds / 1e9,
                    100 * row.floorSeconds / row.seconds);
      std::printf("\n");
    }
  }
  return 0;
}
