//===- Readers.h - config formats to ModelDesc ------------------*- C++ -*-===//
//
// One reader per input format. Each reads its keys from a ConfigFile, emits a
// diagnostic at the offending key for everything it rejects, and describes
// the model in the common ModelDesc; none of them builds IR.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_IMPORT_READERS_H
#define MOE_COMPILER_IMPORT_READERS_H

#include "compiler/Import/ConfigFile.h"
#include "compiler/Import/ModelDescription.h"

#include <optional>

namespace mlir::moe::import {

/// A Hugging Face `config.json` (mixtral, qwen2_moe, qwen3_moe, deepseek_v2,
/// deepseek_v3, olmoe).
std::optional<ModelDesc> readHFConfig(ConfigFile &config);

/// A DeepSpeed PR-MoE description (docs/Importers.md).
std::optional<ModelDesc> readPRMoEConfig(ConfigFile &config);

/// `torch_dtype` (or transformers 5's `dtype`): bfloat16, float16, float32.
DType readDType(ConfigFile &config, DType fallback);

} // namespace mlir::moe::import

#endif // MOE_COMPILER_IMPORT_READERS_H
