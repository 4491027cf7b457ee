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

/// The largest sizes the readers accept: beyond any model, and small enough
/// that a reader's work (a description per layer) stays bounded and no
/// weight's element count (experts x width x width < 2^56) overflows int64.
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxExperts = 65536;
/// Hidden and FFN widths.
constexpr int64_t kMaxWidth = int64_t(1) << 20;

/// A Hugging Face `config.json` (mixtral, qwen2_moe, qwen3_moe, deepseek_v2,
/// deepseek_v3, olmoe): its FFN stack, with `wholeModel` also the decoder
/// around it (ModelDesc::decoder).
std::optional<ModelDesc> readHFConfig(ConfigFile &config,
                                      bool wholeModel = false);

/// A DeepSpeed PR-MoE description (docs/Importers.md): its FFN stack, with
/// `wholeModel` also the GPT decoder around it.
std::optional<ModelDesc> readPRMoEConfig(ConfigFile &config,
                                         bool wholeModel = false);

/// `torch_dtype` (or transformers 5's `dtype`): bfloat16, float16, float32.
DType readDType(ConfigFile &config, DType fallback);

} // namespace mlir::moe::import

#endif // MOE_COMPILER_IMPORT_READERS_H
