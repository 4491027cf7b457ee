//===- Driver.cpp - compile, build, load and run a model ------------------===//
//
// moe-run: model description -> moe-compile -> C++ -> a cached shared
// object (runtime/tools/moert-build-model.sh) -> runtime/runner, the same
// runner as moert-run's. The .so resolves moert_* from this process (moe-run
// exports the whole runtime), so model and runner share one world and one
// error state. Several processes (one per GPU) may build the same model into
// one cache at once, and any may be killed: Cache.h says how files get there
// whole; ChildProcess.h how the programs moe-run starts die with it.
//
//===----------------------------------------------------------------------===//

#include "compiler/Driver/Driver.h"

#include "compiler/Driver/Cache.h"
#include "compiler/Driver/ChildProcess.h"
#include "compiler/Driver/Help.h"
#include "compiler/Driver/Progress.h"
#include "compiler/Driver/RunFiles.h"

#include "compiler/Driver/DriverConfig.h"
#include "compiler/Export/ToCpp.h"
#include "compiler/Import/Importers.h"
#include "compiler/InitAll.h"
#include "compiler/Support/ContextOptions.h"
#include "compiler/Support/InputChecks.h"
#include "dialects/moe/IR/MoeDialect.h"
#include "passes/Parallelism/PlanReport.h"
#include "passes/Pipelines/ForwardedOption.h"
#include "passes/Pipelines/Pipelines.h"
#include "runtime/runner/Runner.h"
#include "runtime/weights/Checkpoint.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/xxhash.h"

#include <chrono>
#include <vector>

using namespace mlir;
namespace cl = llvm::cl;

namespace {

int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-run: error: " << message << "\n";
  return 1;
}

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

struct Options {
  // What moe-run compiles with. The flags that are its options are declared
  // from them (sameAs); moe-run's values are copied in before compiling.
  moe::CompileOptions compile;

  cl::opt<std::string> input{cl::Positional, cl::Required,
                             cl::desc("<checkpoint dir | config.json | "
                                      "model.mlir>")};
  cl::opt<std::string> backend{"backend",
                               cl::desc("cpu | cuda (cuda: one process per "
                                        "GPU, started by mpirun or torchrun)"),
                               cl::init("cpu")};
  // A run needs a mesh and a token count: moe-run's defaults, not the
  // pipeline's.
  cl::opt<std::string> mesh{"mesh",
                            cl::desc("NODESxGPUS to compile for and run on"),
                            cl::init("1x1")};
  cl::opt<int64_t> tokens{"tokens",
                          cl::desc("tokens per rank per step to compile for "
                                   "and run"),
                          cl::init(16)};
  cl::opt<int64_t> steps{"steps",
                         cl::desc("steps to run on the same input (layer "
                                  "time: the median)"),
                         cl::init(1)};
  cl::opt<moe::cost::Policy> policy{moe::sameAs(compile.policy)};
  cl::opt<int64_t> ep{moe::sameAs(compile.ep)};
  cl::opt<int64_t> tp{moe::sameAs(compile.tp)};
  cl::opt<int64_t> attentionTp{moe::sameAs(compile.attentionTp)};
  cl::opt<moe::DuplicateTokens> duplicateTokens{
      moe::sameAs(compile.duplicateTokens)};
  cl::opt<bool> fuse{moe::sameAs(compile.fuse)};
  cl::opt<std::string> weights{
      "weights",
      cl::desc("a safetensors file, a sharded checkpoint's index.json or a "
               "checkpoint directory (default: the input directory's, else "
               "random weights from --seed)")};
  cl::opt<bool> quiet{"quiet", cl::desc("no load progress on stderr"),
                      cl::init(false)};
  cl::opt<uint64_t> seed{"seed", cl::desc("seed of random weights / input"),
                         cl::init(0)};
  cl::opt<std::string> inputNpy{"input",
                                cl::desc("x.npy [ranks*tokens, hidden] f32 "
                                         "(default: random)")};
  cl::opt<std::string> output{
      "output", cl::desc("write y.npy (f32) here (default: y.npy in the run "
                         "directory, $MOE_RUN_DIR or <cache dir>/runs/"
                         "<model>-<mesh>)")};
  cl::opt<std::string> expertStats{
      "expert-stats",
      cl::desc("write the routing statistics here (JSON, "
               "docs/ExpertStats.md) and a heat map beside it (.svg)")};
  cl::opt<std::string> planSvg{
      "plan-svg", cl::desc("write the plan as a picture (SVG) here")};
  cl::opt<bool> yes{"yes",
                    cl::desc("generate random weights of any size"),
                    cl::init(false)};
  cl::opt<double> maxRandomGiB{
      "max-random-weights-gb",
      cl::desc("the most random weights (GiB) generated without --yes"),
      cl::init(4)};
  // A whole decoder: greedy generation from token ids.
  cl::list<std::string> promptIds{
      "prompt-ids",
      cl::desc("token ids 1,2,3 of one prompt (repeat for a batch): import "
               "the whole decoder and generate")};
  cl::opt<std::string> promptsFile{
      "prompts-file",
      cl::desc("prompts, one per line, ids separated by spaces or commas "
               "(added to --prompt-ids)")};
  cl::opt<int64_t> maxNewTokens{
      "max-new-tokens", cl::desc("new tokens per prompt"), cl::init(16)};
  cl::opt<std::string> outputIds{
      "output-ids", cl::desc("write the new ids, one line per prompt")};
  cl::opt<std::string> outputLogits{
      "output-logits",
      cl::desc("write logits.npy: f32 [K, vocab], or [B, K, vocab]")};
  cl::opt<int32_t> threads{"threads",
                           cl::desc("CPU backend: compute threads per rank "
                                    "(default: $MOERT_CPU_THREADS, else "
                                    "cores / ranks)"),
                           cl::init(0)};
  cl::opt<bool> cudaGraphs{"cuda-graphs",
                           cl::desc("run step 1 directly, then replay it "
                                    "as a captured CUDA graph"),
                           cl::init(false)};
  cl::opt<std::string> cacheDir{"cache-dir",
                                cl::desc("where built models are kept "
                                         "(default: $MOE_CACHE_DIR or "
                                         "~/.cache/moe-mlir)")};
  cl::opt<std::string> emitCpp{"emit-cpp",
                               cl::desc("also write the C++ source here")};
};

std::string cacheDirectory(const Options &opts) {
  if (!opts.cacheDir.empty())
    return opts.cacheDir;
  if (const char *env = std::getenv("MOE_CACHE_DIR"))
    return env;
  SmallString<128> home;
  llvm::sys::path::home_directory(home);
  llvm::sys::path::append(home, ".cache", "moe-mlir");
  return std::string(home);
}

/// NAME=D0xD1[@E] specs of every weight argument of the imported model.
/// Read before compiling, so it skips what the compiler will reject (a
/// declaration, a weight that is not a ranked tensor).
std::vector<std::string> weightSpecs(ModuleOp module) {
  std::vector<std::string> specs;
  module.walk([&](func::FuncOp func) {
    if (func.isExternal())
      return;
    for (BlockArgument arg : func.getArguments()) {
      auto key = func.getArgAttrOfType<StringAttr>(
          arg.getArgNumber(), moe::MoeDialect::kWeightAttrName);
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (!key || !type || type.getRank() == 0)
        continue;
      // A view of a fused tensor: the tensor itself, once.
      if (auto view = func.getArgAttrOfType<moe::FusedViewAttr>(
              arg.getArgNumber(), moe::MoeDialect::kFusedViewAttrName)) {
        std::string spec = key.getValue().str() + "=";
        for (auto [i, d] : llvm::enumerate(view.getShape()))
          spec += (i ? "x" : "") + std::to_string(d);
        if (!llvm::is_contained(specs, spec))
          specs.push_back(spec);
        continue;
      }
      ArrayRef<int64_t> shape = type.getShape();
      bool stacked =
          key.getValue().contains(moe::MoeDialect::kExpertPlaceholder);
      std::string spec = key.getValue().str() + "=";
      for (auto [i, d] : llvm::enumerate(stacked ? shape.drop_front() : shape))
        spec += (i ? "x" : "") + std::to_string(d);
      if (stacked)
        spec += "@" + std::to_string(shape.front());
      specs.push_back(spec);
    }
  });
  return specs;
}

std::string dtypeOf(ModuleOp module) {
  std::string name = "f32";
  module.walk([&](func::FuncOp func) {
    if (!func.isExternal() && func.getNumArguments()) {
      Type t = getElementTypeOrSelf(func.getArgument(0).getType());
      name = t.isBF16() ? "bf16" : t.isF16() ? "f16" : "f32";
    }
  });
  return name;
}

/// Whether the cached `path` can be used; a broken one is said and made
/// again.
bool isCached(StringRef path) {
  std::string why;
  switch (moe::driver::checkSeal(path, why)) {
  case moe::driver::CacheState::Sealed:
    return true;
  case moe::driver::CacheState::Missing:
    return false;
  case moe::driver::CacheState::Broken:
    llvm::errs() << "moe-run: warning: not using the cached " << path << ": "
                 << why << "; making it again\n";
    return false;
  }
  return false;
}

/// The attention split moe-assign-parallelism chooses (attention-tp=0) for
/// a copy of `module` under `compile`'s plan options at `tokens` per rank.
FailureOr<int64_t> chooseAttentionTp(ModuleOp module,
                                     const moe::CompileOptions &compile,
                                     int64_t tokens) {
  OwningOpRef<ModuleOp> copy = module.clone();
  moe::AssignParallelismOptions plan = moe::assignParallelismOptions(compile);
  plan.tokens = tokens;
  plan.attentionTp = 0;
  plan.report = moe::PlanReport::none;
  plan.reportFile = "";
  PassManager pm(module.getContext());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(moe::createAssignParallelism(plan));
  if (failed(pm.run(*copy)))
    return failure();
  auto tp = (*copy)->getAttrOfType<IntegerAttr>(
      moe::MoeDialect::kAttentionTpAttrName);
  return tp ? tp.getInt() : 1;
}

} // namespace

int mlir::moe::runDriver(int argc, char **argv) {
  // libLLVM registers a hidden --threads of its own (LTO); moe-run's
  // --threads is the runner's, so LLVM's moves aside before ours registers.
  if (cl::Option *llvmThreads = cl::getRegisteredOptions().lookup("threads"))
    llvmThreads->setArgStr("llvm-threads");
  registerContextOptions();
  ToolHelp help = driver::toolHelp();
  Options opts;
  help.install();
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-run: compile a MoE model, build it against libmoert and run it\n");
  moert_backend_t backend;
  if (!::moert::runner::parseBackend(opts.backend, backend))
    return fail("--backend must be cpu or cuda, got '" + opts.backend + "'");
  if (llvm::Expected<moe::MeshShape> mesh = moe::MeshShape::parse(opts.mesh);
      !mesh)
    return fail(llvm::toString(mesh.takeError()));
  if (opts.tokens <= 0)
    return fail("--tokens must be positive");
  if (opts.steps <= 0)
    return fail("--steps must be positive");
  if (opts.threads < 0 || opts.threads > 1024)
    return fail("--threads must be from 1 to 1024 (0: the default)");
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string &text : opts.promptIds) {
    prompts.emplace_back();
    if (!::moert::runner::parsePromptIds(text, prompts.back()))
      return fail("--prompt-ids takes token ids like 1,2,3, got '" + text +
                  "'");
  }
  std::string promptsError;
  if (!opts.promptsFile.empty() &&
      !::moert::runner::readPromptFile(opts.promptsFile, prompts, promptsError))
    return fail(promptsError);
  bool generating = !prompts.empty();
  if (generating && opts.maxNewTokens < 1)
    return fail("--max-new-tokens must be positive");
  if (generating && (!opts.inputNpy.empty() || !opts.output.empty()))
    return fail("--input/--output run the FFN stack over hidden states; "
                "--prompt-ids generates with the whole decoder");

  // 1. The model.
  DialectRegistry registry;
  registerDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  std::string input = resolveConfigPath(opts.input);
  auto file = llvm::MemoryBuffer::getFile(input);
  if (!file)
    return fail("cannot read " + input + ": " + file.getError().message());
  sourceMgr.AddNewSourceBuffer(std::move(*file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module =
      StringRef(input).ends_with(".mlir")
          ? parseAndVerifyModule(sourceMgr, &context)
          : importModelConfig(sourceMgr, &context, generating);
  if (!module)
    return 1;
  std::vector<std::string> specs = weightSpecs(*module);
  std::string dtype = dtypeOf(*module);

  // The weights: the given ones, the input directory's, or random ones
  // cached by seed and shapes (their size checked before anything is built).
  std::string cacheDir = cacheDirectory(opts);
  bool reports = ::moert::runner::processReports(backend);
  std::string weightsPath = opts.weights;
  if (weightsPath.empty() && llvm::sys::fs::is_directory(opts.input)) {
    weightsPath = ::moert::weights::findCheckpointWeights(opts.input);
    if (!weightsPath.empty() && reports)
      llvm::outs() << "weights: " << weightsPath << "\n";
  }
  bool randomWeights = weightsPath.empty();
  uint64_t randomBytes = driver::randomWeightBytes(specs, dtype);
  if (randomWeights) {
    std::string specKey = dtype + std::to_string(opts.seed);
    for (const std::string &s : specs)
      specKey += " " + s;
    SmallString<256> path(cacheDir);
    llvm::sys::path::append(
        path, "weights-" + llvm::utohexstr(llvm::xxh3_64bits(specKey)) +
                  ".safetensors");
    weightsPath = std::string(path);
  }

  // 2. Compile to C++.
  PassManager pm(&context);
  CompileOptions &compile = opts.compile;
  compile.mesh = opts.mesh;
  compile.tokens = opts.tokens;
  compile.policy = opts.policy;
  compile.ep = opts.ep;
  compile.tp = opts.tp;
  compile.attentionTp = opts.attentionTp;
  compile.duplicateTokens = opts.duplicateTokens;
  if (generating) {
    // Sized for this batch: every rank's prefill, sequences and positions.
    moe::MeshShape shape = *moe::MeshShape::parse(opts.mesh);
    int32_t ranks = int32_t(shape.nodes * shape.gpusPerNode);
    auto planFor = [&](int64_t attentionTp) {
      return ::moert::runner::planBatch(backend, ranks,
                                        int32_t(std::max<int64_t>(
                                            1, attentionTp)),
                                        prompts, opts.maxNewTokens);
    };
    if (opts.attentionTp == 0) {
      // The cost model's split, chosen at the data-parallel step size,
      // decides how the batch is laid out; the compile then keeps it.
      ::moert::runner::BatchPlan dataParallel = planFor(1);
      FailureOr<int64_t> chosen = chooseAttentionTp(
          *module, compile, std::max(dataParallel.tokens, dataParallel.perRank));
      if (failed(chosen))
        return fail("compilation failed");
      compile.attentionTp = *chosen;
    }
    ::moert::runner::BatchPlan plan = planFor(compile.attentionTp);
    compile.tokens = std::max(plan.tokens, plan.perRank);
    compile.maxBatch = plan.perRank;
    compile.maxSeq = plan.maxSeq;
  }
  compile.fuse = opts.fuse;
  // A captured step may not read the gate's counts back.
  compile.staticCapacity = opts.cudaGraphs;
  if (!opts.planSvg.empty()) {
    compile.report = PlanReport::svg;
    compile.reportFile = opts.planSvg;
  }
  if (failed(buildCompilePipeline(pm, compile)) || failed(pm.run(*module)))
    return fail("compilation failed");
  std::string cpp;
  {
    llvm::raw_string_ostream os(cpp);
    if (failed(translateModelToCpp(*module, os)))
      return 1;
  }
  std::string error;
  if (!opts.emitCpp.empty() &&
      !moe::driver::writeTextFile(opts.emitCpp, cpp, error))
    return fail(error);

  if (!opts.planSvg.empty() && reports)
    llvm::outs() << "plan: " << opts.planSvg << "\n";
  // A plan error comes first; then, before the cache is touched, the size.
  if (randomWeights && !opts.yes && !isCached(weightsPath))
    if (std::optional<std::string> why = driver::checkRandomWeightSize(
            randomBytes, weightsPath, opts.maxRandomGiB))
      return fail(*why);

  // 3. Build (cached by source, compiler and build script).
  if (std::error_code ec = llvm::sys::fs::create_directories(cacheDir))
    return fail("cannot create the cache directory " + cacheDir + ": " +
                ec.message());
  moe::driver::removeOrphanTemporaries(cacheDir);
  auto script = llvm::MemoryBuffer::getFile(MOE_BUILD_MODEL_SCRIPT);
  if (!script)
    return fail("cannot read " MOE_BUILD_MODEL_SCRIPT ": " +
                script.getError().message());
  // The compiler that builds models: the project's unless MOE_MODEL_CXX
  // names another.
  const char *cxxEnv = std::getenv("MOE_MODEL_CXX");
  std::string cxx = cxxEnv && *cxxEnv ? cxxEnv : MOE_CXX_COMPILER;
  // The headers the model is compiled against are part of its ABI: a .so
  // built against another moert.h must not be reused.
  std::string headers;
  for (StringRef name : {"moert.h", "moert_model.h"}) {
    SmallString<256> path(
        llvm::sys::path::parent_path(llvm::sys::path::parent_path(
            StringRef(MOE_BUILD_MODEL_SCRIPT))));
    llvm::sys::path::append(path, name);
    auto header = llvm::MemoryBuffer::getFile(path);
    if (!header)
      return fail("cannot read " + path + ": " + header.getError().message());
    headers += (*header)->getBuffer();
  }
  std::string key = llvm::utohexstr(llvm::xxh3_64bits(
      cpp + cxx + (*script)->getBuffer().str() + headers));
  SmallString<256> so(cacheDir), src(cacheDir);
  llvm::sys::path::append(so, "model-" + key + ".so");
  llvm::sys::path::append(src, "model-" + key + ".cpp");
  if (isCached(so)) {
    if (reports)
      llvm::outs() << "model: cached " << so << "\n";
  } else {
    auto writeCpp = [&](StringRef tmp) {
      return moe::driver::writeTextFile(tmp, cpp, error);
    };
    auto start = std::chrono::steady_clock::now();
    auto buildSo = [&](StringRef tmp) {
      driver::Progress progress("building the model (C++)",
                                reports && !opts.quiet &&
                                    driver::Progress::suitsStderr());
      SmallVector<StringRef> args = {MOE_BUILD_MODEL_SCRIPT, "--cxx", cxx, src,
                                     tmp};
      int code = moe::driver::runGuarded(args, error);
      if (code == 0)
        return true;
      error = "building " + src.str().str() + " with " + cxx + " failed (" +
              (code < 0 ? error : "exit " + std::to_string(code)) + ")";
      return false;
    };
    if (!moe::driver::publish(src, writeCpp, error) ||
        !moe::driver::publish(so, buildSo, error))
      return fail(error);
    if (reports)
      llvm::outs() << llvm::formatv(
          "model: built {0} in {1:F1} s\n", so,
          std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                        start)
              .count());
  }

  // 4. Random weights, when no checkpoint has them.
  if (randomWeights) {
    auto generate = [&](StringRef tmp) {
      std::string total = humanBytes(randomBytes);
      driver::Progress progress(
          "generating " + total + " of random weights",
          reports && !opts.quiet && driver::Progress::suitsStderr(), [&] {
            uint64_t size = 0;
            llvm::sys::fs::file_size(tmp, size);
            return humanBytes(size) + " of " + total + " written";
          });
      std::string seed = std::to_string(opts.seed);
      SmallVector<StringRef> args = {
          MOE_GEN_WEIGHTS, "--out", tmp, "--seed", seed, "--dtype", dtype};
      for (const std::string &s : specs)
        args.push_back(s);
      int code = moe::driver::runGuarded(args, error);
      if (code == 0)
        return true;
      error = "generating random weights into " + tmp.str() + " failed (" +
              (code < 0 ? error : "exit " + std::to_string(code)) + ")";
      return false;
    };
    if (!isCached(weightsPath) &&
        !moe::driver::publish(weightsPath, generate, error))
      return fail(error);
    if (reports)
      llvm::outs() << "weights: random (seed " << opts.seed << ") "
                   << weightsPath << "\n";
  }

  // 5. Run: the runner prints the plan, timings and drops.
  llvm::outs().flush();
  ::moert::runner::RunOptions run;
  run.modelPath = std::string(so);
  run.backend = backend;
  run.tokens = generating ? 0 : opts.tokens;
  run.steps = opts.steps;
  run.weightsPath = weightsPath;
  run.inputNpy = opts.inputNpy;
  run.seed = opts.seed;
  // The FFN stack's y.npy goes where asked, else to the run directory.
  run.outputNpy = opts.output;
  if (run.outputNpy.empty() && !generating) {
    SmallString<256> runDir(
        driver::runDirectory(cacheDir, opts.input, opts.mesh.getValue()));
    if (std::error_code ec = llvm::sys::fs::create_directories(runDir))
      return fail("cannot create the run directory " + runDir + ": " +
                  ec.message());
    llvm::sys::path::append(runDir, "y.npy");
    run.outputNpy = std::string(runDir);
  }
  run.expertStatsPath = opts.expertStats;
  run.cudaGraphs = opts.cudaGraphs;
  run.cpuThreads = opts.threads;
  run.quiet = opts.quiet;
  run.prompts = prompts;
  run.maxNewTokens = generating ? opts.maxNewTokens : 0;
  run.outputIds = opts.outputIds;
  run.outputLogits = opts.outputLogits;
  return ::moert::runner::runCompiledModel("moe-run", run);
}
