//===- runtime/runner/Runner.h - Run a compiled model -----------*- C++ -*-===//
//
// The one implementation of running a compiled model (a .so exporting
// runtime/moert_model.h): load it, open the weights, make the input, run this
// process's ranks for some steps, and print the plan table, per-layer time
// (max over ranks, median over steps), drops (sum over ranks) and the peak
// bytes. Used by moe-run (after it compiles) and by moert-run (runtime only).
// The .so resolves moert_* from the process that loads it, so the executable
// must export the whole runtime (see runtime/runner/CMakeLists.txt).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_RUNNER_H
#define MOERT_RUNNER_RUNNER_H

#include "runtime/launch/Launch.h"
#include "runtime/moert.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moert::runner {

struct RunOptions {
  std::string modelPath; // the compiled model's .so
  moert_backend_t backend = MOERT_BACKEND_CPU;
  int64_t tokens = 0;      // per rank per step; 0: the model's max_tokens
  int64_t steps = 1;       // every step runs on the same input
  // A .safetensors file, an index .json, or a checkpoint directory.
  std::string weightsPath;
  bool quiet = false; // no load progress on stderr (shown only on a tty)
  std::string inputNpy;    // f32 [ranks*tokens, hidden]; empty: random
  uint64_t seed = 0;       // of the random input
  std::string outputNpy;   // f32 [ranks*tokens, hidden], written by rank 0
  // Routing statistics of the direct steps, written by rank 0 (JSON and a
  // heat map beside it: runtime/runner/ExpertStats.h); empty: none.
  std::string expertStatsPath;
  int32_t collectiveTimeoutMs = 0; // <= 0: the runtime's default
  int32_t cpuThreads = 0; // per rank, CPU backend; <= 0: the runtime's default
  // Step 1 runs directly (per-layer table); it is then captured once
  // (moert_graph_capture) and steps 2.. replay it (whole-step times only:
  // a captured step cannot read its statistics back).
  bool cudaGraphs = false;
  // Whole decoders (moe_model_forward): greedy generation. Each prompt is a
  // sequence of token ids; all of them run as one batch.
  std::vector<std::vector<int32_t>> prompts;
  int64_t maxNewTokens = 0;
  std::string outputIds;    // one line per prompt: its new ids
  std::string outputLogits; // f32 [K, vocab] (one prompt) or [B, K, vocab]
};

// How a batch of prompts spreads over the ranks: over the attention groups
// (attentionTp consecutive ranks that split the heads and share the same
// tokens; 1 rank each when attention is data parallel), split when the
// groups divide it (CPU backend), else every rank runs every sequence. What
// one rank's step and KV caches must hold follows: the moe-run compile
// options and the runner's checks.
struct BatchPlan {
  bool split = false;
  int64_t perRank = 0; // sequences per rank (max-batch)
  int64_t tokens = 0;  // the largest prefill of a rank (tokens)
  int64_t maxSeq = 0;  // the longest prompt + new tokens - 1 (max-seq)
};
BatchPlan planBatch(moert_backend_t backend, int32_t worldSize,
                    int32_t attentionTp,
                    const std::vector<std::vector<int32_t>> &prompts,
                    int64_t newTokens);

// "1,2,3" (or "1 2 3") as token ids; false for anything else.
bool parsePromptIds(const std::string &text, std::vector<int32_t> &ids);
// A prompts file: one prompt per line, ids separated by spaces or commas
// (blank lines skipped), appended to `prompts`; false with `error` naming
// the file and line (no exception: the compiler driver calls it too).
bool readPromptFile(const std::string &path,
                    std::vector<std::vector<int32_t>> &prompts,
                    std::string &error);

// The world ranks this process runs: every rank of the mesh for the CPU
// backend (threads); one rank per process for CUDA, from the launcher.
struct ProcessRanks {
  int32_t first = 0;
  int32_t count = 0;
  int32_t worldSize = 0;
  // Only the process holding rank 0 prints the plan and the table.
  bool reports() const { return first == 0; }
};

// Throws moert::Error(MOERT_INVALID_ARGUMENT) when a CUDA launch does not
// fit the mesh the model was planned for (launch::checkMesh).
ProcessRanks processRanks(moert_backend_t backend, int32_t nodes,
                          int32_t gpusPerNode,
                          const launch::RankInfo &launched);

// "cpu" | "cuda"; false for any other name.
bool parseBackend(const std::string &name, moert_backend_t &backend);

// Whether this process prints progress and the report: always for the CPU
// backend; for CUDA, the process the launcher made rank 0 (or, when the
// launch variables are malformed, every process, so that the runner's error
// about them is seen).
bool processReports(moert_backend_t backend);

// Runs the model and prints to stdout; a failure is printed to stderr as
// "<tool>: error: ..." with each failing rank's call. Returns the exit code.
int runCompiledModel(const char *tool, const RunOptions &options);

} // namespace moert::runner

#endif // MOERT_RUNNER_RUNNER_H
