//===- MoeOps.h - moe dialect operations ------------------------*- C++ -*-===//

#ifndef MOE_DIALECTS_MOE_IR_MOEOPS_H
#define MOE_DIALECTS_MOE_IR_MOEOPS_H

#include "dialects/moe/IR/MoeDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::moe {
/// Rank groups `[[0, 1], [2, 3]]` as a 2-D i64 tensor: the syntax and the
/// rule (a non-empty 2-D list of distinct, non-negative ranks) shared by every
/// op that names rank groups.
ParseResult parseRankGroups(OpAsmParser &parser, DenseIntElementsAttr &groups);
void printRankGroups(OpAsmPrinter &p, Operation *op,
                     DenseIntElementsAttr groups);
LogicalResult verifyRankGroups(Operation *op, DenseIntElementsAttr groups);

/// Attention state a model function takes per layer (`!moe.kv_cache`,
/// `!moe.latent_cache`): the elements it holds per (sequence, position),
/// 0 for any other type.
int64_t cacheElementsPerPosition(Type type);
/// The element type of such state, null for any other type.
Type cacheElementType(Type type);
} // namespace mlir::moe

#define GET_OP_CLASSES
#include "dialects/moe/IR/MoeOps.h.inc"

#endif // MOE_DIALECTS_MOE_IR_MOEOPS_H
