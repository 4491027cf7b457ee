//===- runtime/runner/moert-run.cpp - Run a compiled model ----------------===//
//
// moert-run MODEL.so --weights W.safetensors|index.json|DIR
//           [--backend cpu|cuda] [--tokens N] [--steps N] [--input x.npy]
//           [--seed N] [--output y.npy] [--expert-stats FILE.json]
//           [--collective-timeout-ms N]
//           [--threads N] [--cuda-graphs] [--quiet]
// moert-run MODEL.so --weights ... --prompt-ids 1,2,3 [--prompt-ids ...]
//           --max-new-tokens K [--output-ids ids.txt]
//           [--output-logits logits.npy]     (a whole decoder)
//
// The runtime-only twin of moe-run: no compiler, the model built from
// `moe-translate --moe-to-cpp` output (runtime/tools/moert-build-model.sh).
// With --backend cuda, start one process per GPU (mpirun, torchrun, Slurm);
// --cuda-graphs replays steps 2.. from one capture. --threads: compute
// threads per CPU rank (default $MOERT_CPU_THREADS, else cores / ranks).
//
//===----------------------------------------------------------------------===//

#include "runtime/runner/Runner.h"

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace moert;

namespace {

constexpr const char *kUsage =
    "usage: moert-run MODEL.so --weights W.safetensors|INDEX.json|DIR "
    "[--backend cpu|cuda] [--tokens N] [--steps N] [--input x.npy] [--seed N] "
    "[--output y.npy] [--expert-stats FILE.json] [--collective-timeout-ms N] "
    "[--threads N] [--cuda-graphs] [--quiet]\n"
    "       moert-run DECODER.so --weights W --prompt-ids 1,2,3 [--prompt-ids "
    "...] [--prompts-file F] --max-new-tokens K [--output-ids ids.txt] "
    "[--output-logits "
    "logits.npy] [--threads N]\n"
    "  --weights: a safetensors file, a sharded checkpoint's index, or a\n"
    "  checkpoint directory; --quiet: no load progress on stderr;\n"
    "  --expert-stats: routing statistics (docs/ExpertStats.md) and a heat\n"
    "  map beside them (.svg)\n";

int usage(const std::string &message) {
  std::fprintf(stderr, "moert-run: error: %s\n%s", message.c_str(), kUsage);
  return 2;
}

bool parseInt(const char *text, int64_t &out) {
  char *end = nullptr;
  long long value = std::strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0')
    return false;
  out = value;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  runner::RunOptions options;
  std::string backend = "cpu";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::printf("%s", kUsage);
      return 0;
    }
    if (arg == "--cuda-graphs") {
      options.cudaGraphs = true;
      continue;
    }
    if (arg == "--quiet") {
      options.quiet = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      if (!options.modelPath.empty())
        return usage("a second model " + arg);
      options.modelPath = arg;
      continue;
    }
    if (i + 1 >= argc)
      return usage(arg + " needs a value");
    const char *value = argv[++i];
    int64_t number = 0;
    bool isNumber = parseInt(value, number);
    if (arg == "--backend")
      backend = value;
    else if (arg == "--weights")
      options.weightsPath = value;
    else if (arg == "--input")
      options.inputNpy = value;
    else if (arg == "--output")
      options.outputNpy = value;
    else if (arg == "--expert-stats")
      options.expertStatsPath = value;
    else if (arg == "--prompt-ids") {
      std::vector<int32_t> ids;
      if (!runner::parsePromptIds(value, ids))
        return usage(std::string("--prompt-ids takes token ids like 1,2,3, "
                                 "got '") +
                     value + "'");
      options.prompts.push_back(std::move(ids));
    } else if (arg == "--prompts-file") {
      std::string error;
      if (!runner::readPromptFile(value, options.prompts, error))
        return usage(error);
    } else if (arg == "--max-new-tokens" && isNumber && number >= 1)
      options.maxNewTokens = number;
    else if (arg == "--output-ids")
      options.outputIds = value;
    else if (arg == "--output-logits")
      options.outputLogits = value;
    else if (arg == "--tokens" && isNumber)
      options.tokens = number;
    else if (arg == "--steps" && isNumber)
      options.steps = number;
    else if (arg == "--seed" && isNumber && number >= 0)
      options.seed = uint64_t(number);
    else if (arg == "--collective-timeout-ms" && isNumber)
      options.collectiveTimeoutMs = int32_t(number);
    else if (arg == "--threads" && isNumber && number >= 1 && number <= 1024)
      options.cpuThreads = int32_t(number);
    else
      return usage("unknown option or bad value: " + arg + " " + value);
  }
  if (options.modelPath.empty())
    return usage("no model .so given");
  // The .so holds no weight names or shapes, so random weights cannot be
  // made here: moe-run --seed N prints the file it generated.
  if (options.weightsPath.empty())
    return usage("--weights is required");
  if (!runner::parseBackend(backend, options.backend))
    return usage("--backend must be cpu or cuda, got '" + backend + "'");
  return runner::runCompiledModel("moert-run", options);
}
