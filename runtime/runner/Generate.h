//===- runtime/runner/Generate.h - Greedy generation ------------*- C++ -*-===//
//
// Runs a compiled whole decoder (moe_model_forward): prefill every prompt,
// then one decode step per new token, greedy (the model's argmax). Part of
// the runner (Runner.h): moe-run and moert-run reach it through
// runCompiledModel when the model is a decoder.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_GENERATE_H
#define MOERT_RUNNER_GENERATE_H

#include "runtime/moert_model.h"
#include "runtime/runner/Runner.h"

namespace moert::runner {

// Generates and prints the timing table; throws moert::Error on failure.
void generate(const RunOptions &options, const moert_model_info_t &info,
              moert_model_init_fn init, moert_model_forward_fn forward);

} // namespace moert::runner

#endif // MOERT_RUNNER_GENERATE_H
