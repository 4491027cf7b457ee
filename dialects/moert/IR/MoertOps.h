//===- MoertOps.h - moert dialect operations --------------------*- C++ -*-===//

#ifndef MOE_DIALECTS_MOERT_IR_MOERTOPS_H
#define MOE_DIALECTS_MOERT_IR_MOERTOPS_H

#include "dialects/moe/IR/MoeOps.h"
#include "dialects/moert/IR/MoertDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/moert/IR/MoertCallInterface.h.inc"

#define GET_OP_CLASSES
#include "dialects/moert/IR/MoertOps.h.inc"

#endif // MOE_DIALECTS_MOERT_IR_MOERTOPS_H
