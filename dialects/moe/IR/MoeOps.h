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

#define GET_OP_CLASSES
#include "dialects/moe/IR/MoeOps.h.inc"

#endif // MOE_DIALECTS_MOE_IR_MOEOPS_H
