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
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using namespace mlir::moe::import;

using Reader = std::optional<ModelDesc> (*)(ConfigFile &);

/// Config file -> ModelDesc (format-specific) -> module (common).
static OwningOpRef<ModuleOp> importWith(std::unique_ptr<ConfigFile> config,
                                        Reader read, MLIRContext *context) {
  context->loadDialect<mlir::moe::MoeDialect, func::FuncDialect>();
  if (!config)
    return nullptr;
  std::optional<ModelDesc> model = read(*config);
  if (!model)
    return nullptr;
  return buildModule(*model, context);
}

static OwningOpRef<ModuleOp> importWith(Reader read, llvm::SourceMgr &sourceMgr,
                                        MLIRContext *context) {
  mlir::moe::applyContextOptions(context);
  return importWith(ConfigFile::parse(sourceMgr, context), read, context);
}

static std::optional<ModelDesc> readHFStack(ConfigFile &c) {
  return readHFConfig(c, /*wholeModel=*/false);
}
static std::optional<ModelDesc> readHFModel(ConfigFile &c) {
  return readHFConfig(c, /*wholeModel=*/true);
}
static std::optional<ModelDesc> readPRMoEStack(ConfigFile &c) {
  return readPRMoEConfig(c, /*wholeModel=*/false);
}
static std::optional<ModelDesc> readPRMoEModel(ConfigFile &c) {
  return readPRMoEConfig(c, /*wholeModel=*/true);
}

OwningOpRef<ModuleOp> mlir::moe::importHFConfig(llvm::SourceMgr &sourceMgr,
                                                MLIRContext *context) {
  return importWith(readHFStack, sourceMgr, context);
}

OwningOpRef<ModuleOp> mlir::moe::importHFModel(llvm::SourceMgr &sourceMgr,
                                               MLIRContext *context) {
  return importWith(readHFModel, sourceMgr, context);
}

OwningOpRef<ModuleOp> mlir::moe::importPRMoEConfig(llvm::SourceMgr &sourceMgr,
                                                   MLIRContext *context) {
  return importWith(readPRMoEStack, sourceMgr, context);
}

OwningOpRef<ModuleOp> mlir::moe::importPRMoEModel(llvm::SourceMgr &sourceMgr,
                                                  MLIRContext *context) {
  return importWith(readPRMoEModel, sourceMgr, context);
}

OwningOpRef<ModuleOp> mlir::moe::importModelConfig(llvm::SourceMgr &sourceMgr,
                                                   MLIRContext *context,
                                                   bool wholeModel) {
  std::unique_ptr<ConfigFile> config = ConfigFile::parse(sourceMgr, context);
  // The readers read model_type again (and report what is wrong with it).
  const llvm::json::Value *type = config ? config->get("model_type") : nullptr;
  bool prmoe = type && type->getAsString() == "prmoe";
  Reader read = prmoe ? (wholeModel ? readPRMoEModel : readPRMoEStack)
                      : (wholeModel ? readHFModel : readHFStack);
  return importWith(std::move(config), read, context);
}

std::string mlir::moe::resolveConfigPath(llvm::StringRef path) {
  if (!llvm::sys::fs::is_directory(path))
    return path.str();
  llvm::SmallString<256> config(path);
  llvm::sys::path::append(config, "config.json");
  return std::string(config);
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
        return OwningOpRef<Operation *>(
            mlir::moe::importHFConfig(sourceMgr, context).release());
      },
      registerDialects);
  static TranslateToMLIRRegistration importHFModel(
      "import-hf-model",
      "import the whole decoder of a Hugging Face MoE checkpoint (embedding, "
      "attention, norms, FFN stack, LM head; mixtral, qwen2_moe, qwen3_moe, "
      "olmoe)",
      [](llvm::SourceMgr &sourceMgr, MLIRContext *context) {
        return OwningOpRef<Operation *>(
            mlir::moe::importHFModel(sourceMgr, context).release());
      },
      registerDialects);
  static TranslateToMLIRRegistration importPRMoEModel(
      "import-prmoe-model",
      "import the whole GPT decoder of a DeepSpeed PR-MoE description "
      "(embedding, positions, LayerNorm, attention, FFN stack, LM head)",
      [](llvm::SourceMgr &sourceMgr, MLIRContext *context) {
        return OwningOpRef<Operation *>(
            mlir::moe::importPRMoEModel(sourceMgr, context).release());
      },
      registerDialects);
  static TranslateToMLIRRegistration importPRMoE(
      "import-prmoe", "import a DeepSpeed PR-MoE description (JSON)",
      [](llvm::SourceMgr &sourceMgr, MLIRContext *context) {
        return OwningOpRef<Operation *>(
            mlir::moe::importPRMoEConfig(sourceMgr, context).release());
      },
      registerDialects);
}
