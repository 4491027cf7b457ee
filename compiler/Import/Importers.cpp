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
static OwningOpRef<Operation *> importWith(std::unique_ptr<ConfigFile> config,
                                           Reader read, MLIRContext *context) {
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

static OwningOpRef<Operation *>
importWith(Reader read, llvm::SourceMgr &sourceMgr, MLIRContext *context) {
  mlir::moe::applyContextOptions(context);
  return importWith(ConfigFile::parse(sourceMgr, context), read, context);
}

OwningOpRef<ModuleOp> mlir::moe::importModelConfig(llvm::SourceMgr &sourceMgr,
                                                   MLIRContext *context) {
  context->loadDialect<mlir::moe::MoeDialect, func::FuncDialect>();
  std::unique_ptr<ConfigFile> config = ConfigFile::parse(sourceMgr, context);
  // The readers read model_type again (and report what is wrong with it).
  const llvm::json::Value *type = config ? config->get("model_type") : nullptr;
  bool prmoe = type && type->getAsString() == "prmoe";
  OwningOpRef<Operation *> op = importWith(
      std::move(config), prmoe ? readPRMoEConfig : readHFConfig, context);
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
