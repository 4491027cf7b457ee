//===- runtime/runner/Runner.cpp - Run a compiled model -------------------===//

#include "runtime/runner/Runner.h"

#include "runtime/common/Error.h"
#include "runtime/moert_model.h"
#include "runtime/runner/ExpertStats.h"
#include "runtime/runner/Generate.h"
#include "runtime/runner/Npy.h"
#include "runtime/runner/RunSupport.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <unistd.h>
#include <vector>

namespace moert::runner {

bool parseBackend(const std::string &name, moert_backend_t &backend) {
  if (name == "cpu")
    backend = MOERT_BACKEND_CPU;
  else if (name == "cuda")
    backend = MOERT_BACKEND_CUDA;
  else
    return false;
  return true;
}

bool processReports(moert_backend_t backend) {
  if (backend == MOERT_BACKEND_CPU)
    return true;
  try {
    return launch::discoverRankFromProcessEnv().rank == 0;
  } catch (const Error &) {
    return true;
  }
}

ProcessRanks processRanks(moert_backend_t backend, int32_t nodes,
                          int32_t gpusPerNode,
                          const launch::RankInfo &launched) {
  int32_t mesh = nodes * gpusPerNode;
  if (backend == MOERT_BACKEND_CPU)
    return {0, mesh, mesh};
  launch::checkMesh(launched, nodes, gpusPerNode);
  return {launched.rank, 1, mesh};
}

namespace {

struct Model {
  const moert_model_info_t *info = nullptr;
  moert_model_init_fn init = nullptr;
  moert_model_step_fn step = nullptr;       // an FFN stack
  moert_model_forward_fn forward = nullptr; // a whole decoder
};

// The library stays loaded until the process exits: its code runs on the
// world's threads up to moert_world_destroy.
Model loadModel(const std::string &path) {
  // A name without a slash would be searched on the library path.
  std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  void *lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    fail(MOERT_IO_ERROR, "dlopen: ", dlerror());
  Model m;
  auto info =
      reinterpret_cast<moert_model_info_fn>(dlsym(lib, "moe_model_info"));
  m.init = reinterpret_cast<moert_model_init_fn>(dlsym(lib, "moe_model_init"));
  if (!info || !m.init)
    fail(MOERT_FORMAT_ERROR, path, " does not export moe_model_info/init");
  m.info = info();
  bool decoder = m.info->kind == MOERT_MODEL_DECODER;
  const char *entry = decoder ? "moe_model_forward" : "moe_model_step";
  void *symbol = dlsym(lib, entry);
  if (!symbol)
    fail(MOERT_FORMAT_ERROR, path, " does not export ", entry);
  if (decoder)
    m.forward = reinterpret_cast<moert_model_forward_fn>(symbol);
  else
    m.step = reinterpret_cast<moert_model_step_fn>(symbol);
  return m;
}

// x in [-1, 1), the same on every process and platform (xorshift64).
std::vector<float> randomInput(uint64_t seed, int64_t count) {
  std::vector<float> x(static_cast<size_t>(count));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float &v : x) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    v = float((s >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
  }
  return x;
}

struct Job {
  Model model;
  moert_weights_t weights = nullptr;
  int64_t tokens = 0;
  int64_t steps = 1;
  ProcessRanks ranks;
  const std::vector<float> *x = nullptr; // [worldSize * tokens, hidden]
  // --output: every rank's rows, gathered to rank 0 (null: no output).
  std::vector<float> *y = nullptr; // [worldSize * tokens, hidden]
  std::vector<std::string> where;  // per rank of this process
  // Reduced over the world and written by rank 0:
  int64_t initNs = 0;
  std::vector<std::vector<int64_t>> layerNs; // [step][layer], max over ranks
  std::vector<int64_t> dropped; // [layer], sum over ranks (same each step)
  bool cudaGraphs = false;
  std::vector<int64_t> replayNs; // [step - 1], max over ranks
  // --expert-stats: [layer][max_experts] kept choices, summed over the direct
  // steps and the ranks; each layer's expert count and drops over the steps.
  bool expertStats = false;
  std::vector<int64_t> expertTokens, layerExperts, droppedTotal;
  std::atomic<int32_t> initsDone{0}; // ranks of this process past init
};

// Counts a rank past init on every path out of it.
struct InitDone {
  std::atomic<int32_t> &count;
  ~InitDone() { ++count; }
};

// While the ranks of this process load, a line on stderr (a terminal) that
// says how far: "loading weights: 3/7 files, 4.21/14.90 GB, 1.85 GB/s".
// It appears after a second (MOERT_PROGRESS_AFTER_MS, for tests), so small
// loads stay silent.
class LoadProgress {
public:
  LoadProgress(moert_weights_t weights, const Job &job)
      : weights_(weights), job_(job), firstAfter_(firstDelay()),
        thread_([this] { loop(); }) {}
  ~LoadProgress() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

private:
  static std::chrono::milliseconds firstDelay() {
    const char *env = std::getenv("MOERT_PROGRESS_AFTER_MS");
    return std::chrono::milliseconds(env && *env ? std::atol(env) : 1000);
  }

  void loop() {
    auto start = std::chrono::steady_clock::now();
    bool shown = false;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      // The first line waits for the delay or the end of the load.
      if (shown)
        wake_.wait_for(lock, std::chrono::milliseconds(250));
      else
        wake_.wait_until(lock, start + firstAfter_, [&] {
          return stop_ || job_.initsDone.load() >= job_.ranks.count;
        });
      bool done = stop_ || job_.initsDone.load() >= job_.ranks.count;
      if (done && !shown && firstAfter_.count() > 0) // 0: always a line
        return;
      moert_weights_stats_t s{};
      moert_weights_stats(weights_, &s);
      double seconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start)
                           .count();
      std::fprintf(stderr,
                   "\rloading weights: %lld/%lld files, %.2f/%.2f GB, "
                   "%.2f GB/s ",
                   (long long)s.files_read, (long long)s.files,
                   s.bytes_read / 1e9, s.bytes / 1e9,
                   seconds > 0 ? s.bytes_read / 1e9 / seconds : 0.0);
      shown = true;
      if (done) {
        std::fprintf(stderr, "\n");
        return;
      }
    }
  }

  moert_weights_t weights_;
  const Job &job_;
  std::chrono::milliseconds firstAfter_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_; // last: starts once the members above exist
};

// Owned by one rank; freed on every path out of runRank.
// What a captured step does: restore x from the staged f32 input, then step
// without statistics (they would be read back to the host).
struct CapturedStep {
  const Job *job;
  moert_buffer_t state;
  moert_view_t f32, x;
  const char **call;
};

moert_status_t runCapturedStep(moert_context_t ctx, void *user) {
  auto &c = *static_cast<CapturedStep *>(user);
  int64_t n = c.job->tokens * c.job->model.info->hidden;
  if (moert_status_t st = moert_buffer_copy(ctx, c.f32, c.x, n))
    return st;
  return c.job->model.step(ctx, c.state, nullptr, c.job->tokens, c.x, c.call);
}

// values[i] = their sum over the world's ranks, through a device buffer.
moert_status_t sumOverRanks(moert_context_t ctx, moert_group_t world,
                            std::vector<int64_t> &values) {
  moert_buffer_t buffer = nullptr;
  int64_t n = int64_t(values.size());
  if (moert_status_t st = moert_buffer_alloc(ctx, size_t(n * 8), &buffer))
    return st;
  moert_view_t view = moert_make_view(buffer, 0, MOERT_I64);
  moert_status_t st = moert_buffer_upload(ctx, view, values.data(), n);
  if (st == MOERT_OK)
    st = moert_all_reduce(ctx, world, MOERT_REDUCE_SUM, view, view, n);
  if (st == MOERT_OK)
    st = moert_buffer_download(ctx, values.data(), view, n);
  moert_buffer_free(ctx, buffer);
  return st;
}

moert_status_t runRank(moert_context_t ctx, void *user) {
  Job &job = *static_cast<Job *>(user);
  const moert_model_info_t &info = *job.model.info;
  int32_t rank = moert_context_rank(ctx);
  RankCheck check(job.where[size_t(rank - job.ranks.first)]);
  const char **call = check.call();
  RankResources res{ctx};
  moert_status_t st;
  if ((st = check(moert_buffer_alloc(ctx, size_t(info.state_bytes), &res.state),
                  "allocating the model state")))
    return st;
  int64_t start = moert_model_clock_ns();
  {
    InitDone done{job.initsDone};
    if ((st = check(job.model.init(ctx, job.weights, res.state, call), "init")))
      return st;
  }
  int64_t initNs = moert_model_clock_ns() - start;

  if ((st = check(createWorldGroup(ctx, job.ranks.worldSize, &res.world),
                  "creating the world group for the statistics")) ||
      (st = check(
           moert_all_reduce_i64(ctx, res.world, MOERT_REDUCE_MAX, &initNs),
           "reducing the load time")))
    return st;
  if (rank == 0)
    job.initNs = initNs;

  // x in the model's dtype, staged through f32 (room for max_tokens rows).
  int64_t n = job.tokens * info.hidden;
  if ((st = check(
           moert_buffer_alloc(
               ctx, size_t(n * 4 + info.max_tokens * info.hidden * 4), &res.io),
           "allocating the activations")))
    return st;
  moert_view_t f32 = moert_make_view(res.io, 0, MOERT_F32);
  moert_view_t x = moert_make_view(
      res.io, n * 4 / int64_t(moert_dtype_size(info.dtype)), info.dtype);
  std::vector<moert_model_layer_stats_t> stats(size_t(info.num_layers));
  // --expert-stats: the model writes each step's counts here; summed below.
  size_t room = job.expertStats ? size_t(info.max_experts) : 0;
  std::vector<int64_t> stepTokens(stats.size() * room),
      runTokens(stats.size() * room);
  int64_t directSteps = job.cudaGraphs ? 1 : job.steps;
  for (int64_t s = 0; s < directSteps; ++s) {
    if ((st = check(moert_buffer_upload(ctx, f32, job.x->data() + rank * n, n),
                    "uploading the input")) ||
        (st = check(moert_buffer_copy(ctx, f32, x, n), "uploading the input")))
      return st;
    for (size_t l = 0; l < stats.size(); ++l)
      stats[l] = {0, 0, 0, room ? stepTokens.data() + l * room : nullptr};
    if ((st = check(
             job.model.step(ctx, res.state, stats.data(), job.tokens, x, call),
             "step")))
      return st;
    for (int32_t l = 0; l < info.num_layers; ++l) {
      int64_t ns = stats[size_t(l)].nanoseconds;
      int64_t dropped = stats[size_t(l)].dropped;
      if ((st = check(
               moert_all_reduce_i64(ctx, res.world, MOERT_REDUCE_MAX, &ns),
               "reducing the layer times")) ||
          (st = check(
               moert_all_reduce_i64(ctx, res.world, MOERT_REDUCE_SUM, &dropped),
               "reducing the dropped choices")))
        return st;
      if (rank == 0) {
        job.layerNs[size_t(s)][size_t(l)] = ns;
        job.dropped[size_t(l)] = dropped;
        job.droppedTotal[size_t(l)] += dropped;
        job.layerExperts[size_t(l)] = stats[size_t(l)].experts;
      }
      for (int64_t e = 0; room && e < stats[size_t(l)].experts; ++e)
        runTokens[size_t(l) * room + size_t(e)] +=
            stepTokens[size_t(l) * room + size_t(e)];
    }
  }
  if (room && (st = check(sumOverRanks(ctx, res.world, runTokens),
                          "reducing the routing statistics")))
    return st;
  if (room && rank == 0)
    job.expertTokens = runTokens;
  if (job.cudaGraphs) {
    CapturedStep captured{&job, res.state, f32, x, call};
    if ((st = check(
             moert_graph_capture(ctx, runCapturedStep, &captured, &res.graph),
             "capturing the step (--cuda-graphs)")))
      return st;
    for (int64_t s = 1; s < job.steps; ++s) {
      int64_t replayStart = moert_model_clock_ns();
      if ((st = check(moert_graph_replay(ctx, res.graph),
                      "replaying the captured step")))
        return st;
      int64_t ns = moert_model_clock_ns() - replayStart;
      if ((st = check(
               moert_all_reduce_i64(ctx, res.world, MOERT_REDUCE_MAX, &ns),
               "reducing the replay times")))
        return st;
      if (rank == 0)
        job.replayNs[size_t(s - 1)] = ns;
    }
  }
  if (!job.y)
    return MOERT_OK;
  // Rank 0 gathers every rank's rows: one path whether the ranks are threads
  // (CPU) or processes (CUDA, where rank 0's process writes the file).
  int64_t all = n * job.ranks.worldSize;
  if ((st = check(moert_buffer_copy(ctx, x, f32, n), "gathering the output")) ||
      (st = check(moert_buffer_alloc(ctx, size_t(all * 4), &res.gathered),
                  "gathering the output")))
    return st;
  moert_view_t gathered = moert_make_view(res.gathered, 0, MOERT_F32);
  if ((st = check(moert_all_gather(ctx, res.world, f32, gathered, n),
                  "gathering the output")))
    return st;
  if (rank == 0 &&
      (st = check(moert_buffer_download(ctx, job.y->data(), gathered, all),
                  "downloading the output")))
    return st;
  return MOERT_OK;
}

int64_t median(std::vector<int64_t> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void writeRouting(const std::string &path, const moert_model_info_t &info,
                  const Job &job, int64_t tokens, int64_t steps) {
  ExpertStats stats;
  stats.model = info.name;
  stats.nodes = info.nodes;
  stats.gpusPerNode = info.gpus_per_node;
  stats.tokensPerRank = tokens;
  stats.steps = steps;
  size_t room = size_t(info.max_experts);
  for (int32_t l = 0; l < info.num_layers; ++l) {
    int64_t experts = job.layerExperts[size_t(l)];
    if (experts <= 0)
      continue; // a dense layer routes nothing
    auto first = job.expertTokens.begin() + ptrdiff_t(size_t(l) * room);
    stats.layers.push_back(
        {l, std::vector<int64_t>(first, first + experts),
         job.droppedTotal[size_t(l)]});
  }
  writeExpertStats(path, stats);
  std::printf("expert stats: %s (heat map %s)\n", path.c_str(),
              heatMapPath(path).c_str());
}

void run(const RunOptions &options) {
  Model model = loadModel(options.modelPath);
  const moert_model_info_t &info = *model.info;
  if (model.forward)
    return generate(options, info, model.init, model.forward);
  if (!options.prompts.empty())
    fail(MOERT_INVALID_ARGUMENT,
         "--prompt-ids needs a whole decoder (moe-translate --import-hf-model, "
         "moe-run --prompt-ids); this model is an FFN stack over hidden "
         "states (--input/--output)");
  int64_t tokens = options.tokens ? options.tokens : info.max_tokens;
  if (tokens <= 0 || tokens > info.max_tokens)
    fail(MOERT_INVALID_ARGUMENT, "--tokens must be in [1, ", info.max_tokens,
         "] (the model was compiled for ", info.max_tokens,
         " tokens per rank), got ", tokens);
  if (options.steps < 1)
    fail(MOERT_INVALID_ARGUMENT, "--steps must be positive");
  if (options.cudaGraphs && options.steps < 2)
    fail(MOERT_INVALID_ARGUMENT, "--cuda-graphs needs --steps 2 or more "
                                 "(step 1 runs directly, the rest replay it)");
  launch::RankInfo launched;
  if (options.backend == MOERT_BACKEND_CUDA)
    launched = launch::discoverRankFromProcessEnv();
  ProcessRanks ranks =
      processRanks(options.backend, info.nodes, info.gpus_per_node, launched);
  if (ranks.reports())
    std::printf("%s", info.plan_table);

  int64_t rows = int64_t(ranks.worldSize) * tokens;
  std::vector<float> x;
  if (!options.inputNpy.empty()) {
    NpyMatrix in = readNpy(options.inputNpy);
    if (in.rows != rows || in.cols != info.hidden)
      fail(MOERT_INVALID_ARGUMENT, options.inputNpy, " is [", in.rows, ", ",
           in.cols, "]; this run needs [", rows, ", ", info.hidden,
           "] (ranks x tokens, hidden)");
    x = std::move(in.data);
  } else {
    x = randomInput(options.seed, rows * info.hidden);
  }
  // Only the process of rank 0 receives the gathered output.
  std::vector<float> y;
  if (!options.outputNpy.empty() && ranks.reports())
    y.assign(size_t(rows * info.hidden), 0.0f);

  RunSession session(options, info);
  moert_weights_t weights = session.weights();
  moert_world_t world = session.world();

  Job job;
  job.model = model;
  job.weights = weights;
  job.tokens = tokens;
  job.steps = options.steps;
  job.ranks = ranks;
  job.x = &x;
  job.y = options.outputNpy.empty() ? nullptr : &y;
  job.where.assign(size_t(ranks.count), "");
  job.cudaGraphs = options.cudaGraphs;
  int64_t directSteps = options.cudaGraphs ? 1 : options.steps;
  job.layerNs.assign(size_t(directSteps),
                     std::vector<int64_t>(size_t(info.num_layers), 0));
  job.replayNs.assign(size_t(options.steps - directSteps), 0);
  job.dropped.assign(size_t(info.num_layers), 0);
  job.expertStats = !options.expertStatsPath.empty();
  job.droppedTotal.assign(size_t(info.num_layers), 0);
  job.layerExperts.assign(size_t(info.num_layers), 0);
  if (ranks.reports()) {
    std::printf("loading weights: %lld bytes per rank on %d rank(s)...\n",
                (long long)info.weight_bytes, ranks.worldSize);
    if (options.backend == MOERT_BACKEND_CPU)
      std::printf("cpu threads per rank: %d\n", moert_world_cpu_threads(world));
    std::fflush(stdout);
  }
  {
    std::unique_ptr<LoadProgress> progress;
    if (ranks.reports() && !options.quiet && ::isatty(STDERR_FILENO))
      progress = std::make_unique<LoadProgress>(weights, job);
    session.run(runRank, &job, job.where, ranks.first);
  }
  if (!ranks.reports())
    return;

  // bytes_read counts this process's ranks; on the CPU backend that is all.
  moert_weights_stats_t loaded{};
  if (moert_status_t st = moert_weights_stats(weights, &loaded))
    fail(st, moert_last_error());
  std::printf("weights loaded in %.3f s: %lld bytes read from %lld of %lld "
              "file(s), %.2f GB/s\n",
              job.initNs / 1e9, (long long)loaded.bytes_read,
              (long long)loaded.files_read, (long long)loaded.files,
              job.initNs > 0 ? loaded.bytes_read / double(job.initNs) : 0.0);
  if (directSteps > 1)
    std::printf("steps: %lld (layer time: median over steps)\n",
                (long long)directSteps);
  std::printf("%5s %12s %9s\n", "layer", "time us(max)", "dropped");
  std::vector<int64_t> stepNs(size_t(directSteps), 0);
  for (int32_t l = 0; l < info.num_layers; ++l) {
    std::vector<int64_t> perStep;
    for (int64_t s = 0; s < directSteps; ++s) {
      perStep.push_back(job.layerNs[size_t(s)][size_t(l)]);
      stepNs[size_t(s)] += job.layerNs[size_t(s)][size_t(l)];
    }
    std::printf("%5d %12.1f %9lld\n", l, median(perStep) / 1e3,
                (long long)job.dropped[size_t(l)]);
  }
  std::printf("step: %.1f us; peak activation bytes per rank %lld, weights "
              "%lld, state %lld\n",
              median(stepNs) / 1e3, (long long)info.peak_bytes,
              (long long)info.weight_bytes, (long long)info.state_bytes);
  if (!job.replayNs.empty())
    std::printf("cuda graph: %lld replays, median %.1f us per step\n",
                (long long)job.replayNs.size(), median(job.replayNs) / 1e3);
  if (!options.outputNpy.empty()) {
    writeNpy(options.outputNpy, {rows, info.hidden, std::move(y)});
    std::printf("output: %s\n", options.outputNpy.c_str());
  }
  if (job.expertStats)
    writeRouting(options.expertStatsPath, info, job, tokens, directSteps);
}

} // namespace

int runCompiledModel(const char *tool, const RunOptions &options) {
  try {
    run(options);
    std::fflush(stdout);
    return 0;
  } catch (const Error &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s: %s\n", tool,
                 moert_status_name(e.status()), e.what());
    return 1;
  } catch (const std::exception &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
    return 1;
  }
}

} // namespace moert::runner
