//===- FuzzSupport.cpp - what the compiler fuzzers share ------------------===//

#include "tools/fuzz/FuzzSupport.h"

#include "compiler/Export/ToCpp.h"
#include "compiler/InitAll.h"
#include "passes/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <array>
#include <memory>

using namespace mlir;
using namespace mlir::moe;

static const DialectRegistry &registry() {
  static DialectRegistry *dialects = [] {
    auto *r = new DialectRegistry();
    registerDialects(*r);
    return r;
  }();
  return *dialects;
}

fuzz::Session::Session(const uint8_t *data, size_t size)
    : context(registry(), MLIRContext::Threading::DISABLED),
      dropDiagnostics(&context, [](Diagnostic &) { return success(); }),
      hash(llvm::xxh3_64bits(llvm::ArrayRef<uint8_t>(data, size))) {
  context.printOpOnDiagnostic(false);
  // A copy: the parsers read up to a terminating NUL.
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          StringRef(reinterpret_cast<const char *>(data), size), "input"),
      llvm::SMLoc());
}

/// The pipeline's options: every mesh, fuse and static-capacity choice.
static const CompileOptions &optionsFor(uint64_t hash) {
  static constexpr const char *kMeshes[] = {"1x1", "1x2", "1x4", "2x4"};
  static std::array<std::unique_ptr<CompileOptions>, 16> variants;
  std::unique_ptr<CompileOptions> &options = variants[hash % 16];
  if (!options) {
    size_t i = hash % 16;
    options = std::make_unique<CompileOptions>();
    options->mesh = kMeshes[i % 4];
    options->tokens = 16;
    options->fuse = (i / 4) % 2 == 0;
    options->staticCapacity = i / 8 == 1;
  }
  return *options;
}

void fuzz::Session::compile(ModuleOp module) {
  int64_t ops = 0;
  module->walk([&](Operation *) { ++ops; });
  if (ops > kMaxCompiledOps)
    return;
  PassManager pm(&context);
  if (failed(buildCompilePipeline(pm, optionsFor(hash))) ||
      failed(pm.run(module)))
    return;
  (void)translateModelToCpp(module, llvm::nulls());
}

int fuzz::fuzzModule(
    const uint8_t *data, size_t size,
    const std::function<OwningOpRef<ModuleOp>(llvm::SourceMgr &,
                                              MLIRContext *)> &read) {
  if (size > kMaxInputBytes)
    return -1;
  Session session(data, size);
  if (OwningOpRef<ModuleOp> module =
          read(session.source(), session.getContext()))
    session.compile(*module);
  return 0;
}
