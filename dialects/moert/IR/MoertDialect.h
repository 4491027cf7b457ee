//===- MoertDialect.h - moert dialect, enums and types ----------*- C++ -*-===//

#ifndef MOE_DIALECTS_MOERT_IR_MOERTDIALECT_H
#define MOE_DIALECTS_MOERT_IR_MOERTDIALECT_H

#include "dialects/moe/IR/MoeDialect.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpImplementation.h"

#include "dialects/moert/IR/MoertDialect.h.inc"
#include "dialects/moert/IR/MoertEnums.h.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/moert/IR/MoertTypes.h.inc"

#endif // MOE_DIALECTS_MOERT_IR_MOERTDIALECT_H
