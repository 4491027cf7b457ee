//===- Importers.cpp - --import-hf and --import-prmoe ---------------------===//

#include "compiler/Import/Importers.h"

#include "compiler/Import/ConfigFile.h"
#include "compiler/Import/ModuleBuilder.h"
#include "compiler/Import/Readers.h"
#include "compiler/Support/ContextOptions.h"

#include "dialects/moe/IR/MoeDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using namespace mlir::moe::import;

using Reader = std::optional<ModelDesc> (*)(ConfigFile &);

/// Config file -> ModelDesc (format-specific) -> module (common).
static OwningOpRef<Operation *>
importWith(Reader read, llvm::SourceMgr &sourceMgr, MLIRContext *context) {
  mlir::moe::applyContextOptions(context);
  std::unique_ptr<ConfigFile> config = ConfigFile::parse(sourceMgr, context);
  if (!config)
    return nullptr;
  std::optional<ModelDesc> model = read(*config);
  if (!model)
    return nullptr;
  OwningOpRef<ModuleOp> module = buildModule(*model, context);
  if (!module)
    return nullptr;
  return module.release().getOperation();
}

OwningOpRef<ModuleOp> mlir::moe::importModelConfig(llvm::SourceMgr &sourceMgr,
                                                   MLIRContext *context) {
  StringRef text =
      sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID())->getBuffer();
  bool prmoe = false;
  if (llvm::Expected<llvm::json::Value> json = llvm::json::parse(text)) {
    if (const llvm::json::Object *object = json->getAsObject())
      if (std::optional<StringRef> type = object->getString("model_type"))
        prmoe = *type == "prmoe";
  } else {
    llvm::consumeError(json.takeError()); // the reader reports it
  }
  context->loadDialect<mlir::moe::MoeDialect, func::FuncDialect>();
  OwningOpRef<Operation *> op =
      importWith(prmoe ? readPRMoEConfig : readHFConfig, sourceMgr, context);
  return OwningOpRef<ModuleOp>(cast_or_null<ModuleOp>(op.release()));
}

static void registerDialects(DialectRegistry &registry) {
  registry.insert<mlir::moe::MoeDialect, func::FuncDialect>();
}

void ::moe::registerImporters() {
  static TranslateToMLIRRegistration importHF(
      "import-hf",
      "import a Hugging Face MoE config.json (mixtral, qwen2_moe, qwen3_moe, "
      "deepseek_v2, deepseek_v3, olmoe)",
      [](llvm::SourceMgr &sourceMgr, MLIRContext *context) {
        return importWith(readHFConfig, sourceMgr, context);
      },
      registerDialects);
  static TranslateToMLIRRegistration importPRMoE(
      "import-prmoe", "import a DeepSpeed PR-MoE description (JSON)",
      [](llvm::SourceMgr &sourceMgr, MLIRContext *context) {
        return importWith(readPRMoEConfig, sourceMgr, context);
      },
      registerDialects);
}
