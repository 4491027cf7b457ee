//===- Driver.cpp - compile, build, load and run a model ------------------===//
//
// moe-run: model description -> moe-compile -> C++ -> a cached shared
// object -> dlopen -> every rank on the CPU backend. The .so resolves
// moert_* from this process (moe-run exports the whole runtime), so model
// and runner share one world and one error state.
//
//===----------------------------------------------------------------------===//

#include "compiler/Driver/Driver.h"

#include "compiler/Driver/DriverConfig.h"
#include "compiler/Export/ToCpp.h"
#include "compiler/Import/Importers.h"
#include "compiler/InitAll.h"
#include "dialects/moe/IR/MoeDialect.h"
#include "passes/Pipelines/Pipelines.h"
#include "runtime/moert_model.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/xxhash.h"

#include <chrono>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <vector>

using namespace mlir;
namespace cl = llvm::cl;

namespace {

int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-run: error: " << message << "\n";
  return 1;
}

//===----------------------------------------------------------------------===//
// .npy (float32, C order, 2-D)
//===----------------------------------------------------------------------===//

bool readNpy(StringRef path, std::vector<float> &data, int64_t &rows,
             int64_t &cols, std::string &error) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer) {
    error = "cannot read " + path.str() + ": " + buffer.getError().message();
    return false;
  }
  StringRef bytes = (*buffer)->getBuffer();
  if (bytes.size() < 10 || !bytes.starts_with("\x93NUMPY")) {
    error = path.str() + " is not a .npy file";
    return false;
  }
  size_t headerLen = 0, start = 0;
  if (bytes[6] == 1) {
    headerLen = uint8_t(bytes[8]) | (uint8_t(bytes[9]) << 8);
    start = 10;
  } else {
    if (bytes.size() < 12) {
      error = path.str() + ": truncated .npy header";
      return false;
    }
    headerLen = uint8_t(bytes[8]) | (uint8_t(bytes[9]) << 8) |
                (uint8_t(bytes[10]) << 16) | (size_t(uint8_t(bytes[11])) << 24);
    start = 12;
  }
  if (start + headerLen > bytes.size()) {
    error = path.str() + ": truncated .npy header";
    return false;
  }
  StringRef header = bytes.substr(start, headerLen);
  if (!header.contains("'descr': '<f4'") ||
      header.contains("'fortran_order': True")) {
    error = path.str() + ": only C-order float32 (<f4) arrays are supported";
    return false;
  }
  size_t open = header.find("'shape': (");
  StringRef shape = header.substr(open + 10);
  shape = shape.substr(0, shape.find(')'));
  SmallVector<StringRef> dims;
  shape.split(dims, ',', -1, false);
  if (dims.size() != 2 || dims[0].trim().getAsInteger(10, rows) ||
      dims[1].trim().getAsInteger(10, cols)) {
    error =
        path.str() + ": expected a 2-D array, got shape (" + shape.str() + ")";
    return false;
  }
  size_t need = size_t(rows * cols) * 4;
  if (bytes.size() - start - headerLen < need) {
    error = path.str() + ": truncated data";
    return false;
  }
  data.resize(rows * cols);
  std::memcpy(data.data(), bytes.data() + start + headerLen, need);
  return true;
}

bool writeNpy(StringRef path, const std::vector<float> &data, int64_t rows,
              int64_t cols) {
  std::string header = llvm::formatv("{{'descr': '<f4', 'fortran_order': "
                                     "False, 'shape': ({0}, {1}), }",
                                     rows, cols);
  while ((10 + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  std::ofstream out(path.str(), std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {char(header.size() & 0xff), char(header.size() >> 8)};
  out.write(len, 2);
  out << header;
  out.write(reinterpret_cast<const char *>(data.data()), data.size() * 4);
  return bool(out);
}

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

struct Options {
  cl::opt<std::string> input{cl::Positional, cl::Required,
                             cl::desc("<config.json | model.mlir>")};
  cl::opt<std::string> backend{"backend", cl::desc("cpu"), cl::init("cpu")};
  cl::opt<std::string> mesh{"mesh", cl::desc("NODESxGPUS"), cl::init("1x1")};
  cl::opt<int64_t> tokens{"tokens", cl::desc("tokens per rank"), cl::init(16)};
  cl::opt<std::string> policy{"policy", cl::desc("latency | throughput"),
                              cl::init("throughput")};
  cl::opt<int64_t> ep{"ep", cl::desc("force the EP degree"), cl::init(0)};
  cl::opt<int64_t> tp{"tp", cl::desc("force the TP degree"), cl::init(0)};
  cl::opt<bool> fuse{"fuse",
                     cl::desc("run moe-fuse-kernels (--fuse=false: one "
                              "runtime kernel per op)"),
                     cl::init(true)};
  cl::opt<std::string> weights{"weights",
                               cl::desc("safetensors file (default: random "
                                        "weights from --seed)")};
  cl::opt<uint64_t> seed{"seed", cl::desc("seed of random weights / input"),
                         cl::init(0)};
  cl::opt<std::string> inputNpy{"input",
                                cl::desc("x.npy [ranks*tokens, hidden] f32 "
                                         "(default: random)")};
  cl::opt<std::string> output{"output", cl::desc("write y.npy (f32)")};
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
std::vector<std::string> weightSpecs(ModuleOp module) {
  std::vector<std::string> specs;
  module.walk([&](func::FuncOp func) {
    for (BlockArgument arg : func.getArguments()) {
      auto key = func.getArgAttrOfType<StringAttr>(
          arg.getArgNumber(), moe::MoeDialect::kWeightAttrName);
      if (!key)
        continue;
      ArrayRef<int64_t> shape = cast<ShapedType>(arg.getType()).getShape();
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
    if (func.getNumArguments()) {
      Type t = getElementTypeOrSelf(func.getArgument(0).getType());
      name = t.isBF16() ? "bf16" : t.isF16() ? "f16" : "f32";
    }
  });
  return name;
}

int runProgram(ArrayRef<StringRef> argv, std::string &error) {
  return llvm::sys::ExecuteAndWait(argv.front(), argv, std::nullopt, {}, 0, 0,
                                   &error);
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

struct RankJob {
  moert_model_init_fn init;
  moert_model_step_fn step;
  const moert_model_info_t *info;
  moert_weights_t weights;
  int64_t tokens;
  const std::vector<float> *x;
  std::vector<float> *y;
  std::vector<std::vector<moert_model_layer_stats_t>> stats;
  std::vector<double> initSeconds;
  std::vector<std::string> where;
};

moert_status_t runRank(moert_context_t ctx, void *user) {
  auto &job = *static_cast<RankJob *>(user);
  int32_t rank = moert_context_rank(ctx);
  const moert_model_info_t &info = *job.info;
  const char *where = nullptr;
  auto failed = [&](moert_status_t status, const char *what) {
    job.where[rank] = where ? where : what;
    return status;
  };
  moert_buffer_t state = nullptr, io = nullptr;
  moert_status_t st = moert_buffer_alloc(ctx, info.state_bytes, &state);
  if (st != MOERT_OK)
    return failed(st, "allocating the model state");
  auto start = std::chrono::steady_clock::now();
  st = job.init(ctx, job.weights, state, &where);
  job.initSeconds[rank] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (st != MOERT_OK)
    return failed(st, "init");
  int64_t n = job.tokens * info.hidden;
  // x in the model's dtype, staged through f32.
  st = moert_buffer_alloc(ctx, n * 4 + info.max_tokens * info.hidden * 4, &io);
  if (st != MOERT_OK)
    return failed(st, "allocating the activations");
  moert_view_t f32 = moert_make_view(io, 0, MOERT_F32);
  moert_view_t x = moert_make_view(
      io, n * 4 / int64_t(moert_dtype_size(info.dtype)), info.dtype);
  if ((st = moert_buffer_upload(ctx, f32, job.x->data() + rank * n, n)) ||
      (st = moert_buffer_copy(ctx, f32, x, n)))
    return failed(st, "uploading the input");
  st = job.step(ctx, state, job.stats[rank].data(), job.tokens, x, &where);
  if (st != MOERT_OK)
    return failed(st, "step");
  if ((st = moert_buffer_copy(ctx, x, f32, n)) ||
      (st = moert_buffer_download(ctx, job.y->data() + rank * n, f32, n)))
    return failed(st, "downloading the output");
  moert_buffer_free(ctx, io);
  moert_buffer_free(ctx, state);
  return MOERT_OK;
}

} // namespace

int mlir::moe::runDriver(int argc, char **argv) {
  Options opts;
  cl::ParseCommandLineOptions(
      argc, argv,
      "moe-run: compile a MoE model, build it against libmoert and run it\n");
  if (opts.backend != "cpu")
    return fail("--backend " + opts.backend +
                " is not available (only the CPU backend is built)");
  int32_t nodes = 0, gpus = 0;
  {
    StringRef m = opts.mesh;
    auto [a, b] = m.split('x');
    if (a.getAsInteger(10, nodes) || b.getAsInteger(10, gpus) || nodes <= 0 ||
        gpus <= 0)
      return fail("--mesh must be NODESxGPUS, got '" + opts.mesh + "'");
  }
  if (opts.tokens <= 0)
    return fail("--tokens must be positive");
  int32_t ranks = nodes * gpus;

  // 1. The model.
  DialectRegistry registry;
  registerDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  auto file = llvm::MemoryBuffer::getFile(opts.input);
  if (!file)
    return fail("cannot read " + opts.input + ": " + file.getError().message());
  sourceMgr.AddNewSourceBuffer(std::move(*file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module =
      StringRef(opts.input).ends_with(".mlir")
          ? parseSourceFile<ModuleOp>(sourceMgr, &context)
          : importModelConfig(sourceMgr, &context);
  if (!module)
    return 1;
  std::vector<std::string> specs = weightSpecs(*module);
  std::string dtype = dtypeOf(*module);

  // 2. Compile to C++.
  PassManager pm(&context);
  CompileOptions compile;
  compile.mesh = opts.mesh;
  compile.tokens = opts.tokens;
  compile.policy = opts.policy;
  compile.ep = opts.ep;
  compile.tp = opts.tp;
  compile.fuse = opts.fuse;
  if (failed(buildCompilePipeline(pm, compile)) || failed(pm.run(*module)))
    return fail("compilation failed");
  std::string cpp;
  {
    llvm::raw_string_ostream os(cpp);
    if (failed(translateModelToCpp(*module, os)))
      return 1;
  }
  if (!opts.emitCpp.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream out(opts.emitCpp, ec);
    if (ec)
      return fail("cannot write " + opts.emitCpp + ": " + ec.message());
    out << cpp;
  }

  // 3. Build (cached by source + flags).
  std::string cacheDir = cacheDirectory(opts);
  if (std::error_code ec = llvm::sys::fs::create_directories(cacheDir))
    return fail("cannot create the cache directory " + cacheDir + ": " +
                ec.message());
  SmallVector<StringRef> flags = {"-std=c++17", "-O2", "-fPIC", "-shared",
                                  "-I" MOE_RUNTIME_INCLUDE_DIR};
  std::string hashed = cpp + MOE_CXX_COMPILER;
  for (StringRef f : flags)
    hashed += " " + f.str();
  std::string key = llvm::utohexstr(llvm::xxh3_64bits(hashed));
  SmallString<256> so(cacheDir), src(cacheDir);
  llvm::sys::path::append(so, "model-" + key + ".so");
  llvm::sys::path::append(src, "model-" + key + ".cpp");
  if (llvm::sys::fs::exists(so)) {
    llvm::outs() << "model: cached " << so << "\n";
  } else {
    std::error_code ec;
    {
      llvm::raw_fd_ostream out(src, ec);
      if (ec)
        return fail("cannot write " + src + ": " + ec.message());
      out << cpp;
    }
    std::string tmp = (so + ".tmp").str();
    SmallVector<StringRef> args = {MOE_CXX_COMPILER};
    args.append(flags.begin(), flags.end());
    args.append({src, "-o", tmp});
    auto start = std::chrono::steady_clock::now();
    std::string error;
    if (runProgram(args, error) != 0)
      return fail("building " + src + " with " MOE_CXX_COMPILER " failed " +
                  error);
    if (std::error_code ec = llvm::sys::fs::rename(tmp, so))
      return fail("cannot move the built model to " + so + ": " + ec.message());
    llvm::outs() << llvm::formatv(
        "model: built {0} in {1:F1} s\n", so,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
  void *lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return fail(llvm::Twine("dlopen: ") + dlerror());
  auto info =
      reinterpret_cast<moert_model_info_fn>(dlsym(lib, "moe_model_info"));
  auto init =
      reinterpret_cast<moert_model_init_fn>(dlsym(lib, "moe_model_init"));
  auto step =
      reinterpret_cast<moert_model_step_fn>(dlsym(lib, "moe_model_step"));
  if (!info || !init || !step)
    return fail(so + " does not export moe_model_info/init/step");
  const moert_model_info_t &model = *info();
  if (model.nodes * model.gpus_per_node != ranks)
    return fail(llvm::formatv("the model was planned for {0}x{1}, not {2}",
                              model.nodes, model.gpus_per_node, opts.mesh)
                    .str());
  llvm::outs() << model.plan_table;

  // 4. Weights and input.
  std::string weightsPath = opts.weights;
  if (weightsPath.empty()) {
    std::string specKey = dtype + std::to_string(opts.seed);
    for (const std::string &s : specs)
      specKey += " " + s;
    SmallString<256> path(cacheDir);
    llvm::sys::path::append(
        path, "weights-" + llvm::utohexstr(llvm::xxh3_64bits(specKey)) +
                  ".safetensors");
    weightsPath = std::string(path);
    if (!llvm::sys::fs::exists(weightsPath)) {
      std::string seed = std::to_string(opts.seed), tmp = weightsPath + ".tmp";
      SmallVector<StringRef> args = {
          MOE_GEN_WEIGHTS, "--out", tmp, "--seed", seed, "--dtype", dtype};
      for (const std::string &s : specs)
        args.push_back(s);
      std::string error;
      if (runProgram(args, error) != 0)
        return fail("generating random weights failed " + error);
      if (std::error_code ec = llvm::sys::fs::rename(tmp, weightsPath))
        return fail("cannot move the weights to " + weightsPath + ": " +
                    ec.message());
    }
    llvm::outs() << "weights: random (seed " << opts.seed << ") " << weightsPath
                 << "\n";
  }
  int64_t rows = ranks * opts.tokens;
  std::vector<float> x, y(rows * model.hidden, 0.0f);
  if (!opts.inputNpy.empty()) {
    int64_t r = 0, c = 0;
    std::string error;
    if (!readNpy(opts.inputNpy, x, r, c, error))
      return fail(error);
    if (r != rows || c != model.hidden)
      return fail(llvm::formatv("{0} is [{1}, {2}]; this run needs [{3}, {4}] "
                                "(ranks x tokens, hidden)",
                                opts.inputNpy, r, c, rows, model.hidden)
                      .str());
  } else {
    uint64_t s = opts.seed * 0x9E3779B97F4A7C15ull + 1;
    x.resize(rows * model.hidden);
    for (float &v : x) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      v = float((s >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
    }
  }

  // 5. Run.
  moert_weights_t weights = nullptr;
  if (moert_weights_open(weightsPath.c_str(), &weights) != MOERT_OK)
    return fail(moert_last_error());
  moert_world_desc_t desc = {MOERT_BACKEND_CPU, nodes, gpus, 0};
  moert_world_t world = nullptr;
  if (moert_world_create(&desc, &world) != MOERT_OK)
    return fail(moert_last_error());
  RankJob job{init, step, &model, weights, opts.tokens, &x, &y, {}, {}, {}};
  job.stats.assign(
      ranks, std::vector<moert_model_layer_stats_t>(model.num_layers, {0, 0}));
  job.initSeconds.assign(ranks, 0);
  job.where.assign(ranks, "");
  llvm::outs() << llvm::formatv("loading weights: {0} bytes per rank on {1} "
                                "rank(s)...\n",
                                model.weight_bytes, ranks);
  llvm::outs().flush();
  moert_status_t st = moert_world_run(world, runRank, &job);
  if (st != MOERT_OK) {
    std::string message = moert_last_error();
    for (int32_t r = 0; r < ranks; ++r)
      if (!job.where[r].empty())
        message +=
            "\n  rank " + std::to_string(r) + " failed in " + job.where[r];
    moert_world_destroy(world);
    moert_weights_close(weights);
    return fail(llvm::Twine(moert_status_name(st)) + ": " + message);
  }
  moert_world_destroy(world);
  moert_weights_close(weights);
  double initMax =
      *std::max_element(job.initSeconds.begin(), job.initSeconds.end());
  llvm::outs() << llvm::formatv("weights loaded in {0:F3} s\n", initMax);
  llvm::outs() << llvm::formatv("{0,5} {1,12} {2,9}\n", "layer", "time us(max)",
                                "dropped");
  double total = 0;
  for (int32_t l = 0; l < model.num_layers; ++l) {
    int64_t ns = 0, dropped = 0;
    for (int32_t r = 0; r < ranks; ++r) {
      ns = std::max(ns, job.stats[r][l].nanoseconds);
      dropped += job.stats[r][l].dropped;
    }
    total += ns / 1e3;
    llvm::outs() << llvm::formatv("{0,5} {1,12:F1} {2,9}\n", l, ns / 1e3,
                                  dropped);
  }
  llvm::outs() << llvm::formatv(
      "step: {0:F1} us; peak activation bytes per rank {1}, weights {2}, "
      "state {3}\n",
      total, model.peak_bytes, model.weight_bytes, model.state_bytes);
  if (!opts.output.empty()) {
    if (!writeNpy(opts.output, y, rows, model.hidden))
      return fail("cannot write " + opts.output);
    llvm::outs() << "output: " << opts.output << "\n";
  }
  return 0;
}
