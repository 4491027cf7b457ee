//===- MoeDialect.h - moe dialect, enums and attributes ---------*- C++ -*-===//

#ifndef MOE_DIALECTS_MOE_IR_MOEDIALECT_H
#define MOE_DIALECTS_MOE_IR_MOEDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/Support/Error.h"

namespace mlir::moe {
/// Prints `value` with the fewest digits that parse back to the same double,
/// always as a float literal (`16.0`, `2.5`, `1.0e-20`).
void printShortestDouble(AsmPrinter &printer, const llvm::APFloat &value);

/// A mesh's shape as options, tools and reports spell it: NODESxGPUS, e.g.
/// `2x8` (MeshAttr adds the hardware numbers).
struct MeshShape {
  int64_t nodes = 1;
  int64_t gpusPerNode = 1;

  /// Parses NODESxGPUS with both at least 1; the error quotes `text`.
  static llvm::Expected<MeshShape> parse(llvm::StringRef text);
  std::string str() const;
};
} // namespace mlir::moe

#include "dialects/moe/IR/MoeDialect.h.inc"
#include "dialects/moe/IR/MoeEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/moe/IR/MoeAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/moe/IR/MoeTypes.h.inc"

#endif // MOE_DIALECTS_MOE_IR_MOEDIALECT_H
