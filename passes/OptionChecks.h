//===- OptionChecks.h - checks on pass and pipeline options -----*- C++ -*-===//
//
// Checks that run while an option string is parsed, reported through the
// parser's error handler (the tool prints them before any IR is read).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_OPTIONCHECKS_H
#define MOE_PASSES_OPTIONCHECKS_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/Twine.h"

namespace mlir::moe {

/// Errors when `option` was given and is not positive. The token options
/// read 0 as "not given" (the module's or the policy's bound), so a given
/// 0 would silently mean something else.
template <typename OptionT>
LogicalResult
checkGivenPositive(StringRef owner, const OptionT &option,
                   function_ref<LogicalResult(const Twine &)> errorHandler) {
  if (!option.hasValue() || option > 0)
    return success();
  return errorHandler(owner + ": " + option.ArgStr + " must be positive, got " +
                      Twine(int64_t(option)));
}

} // namespace mlir::moe

#endif // MOE_PASSES_OPTIONCHECKS_H
