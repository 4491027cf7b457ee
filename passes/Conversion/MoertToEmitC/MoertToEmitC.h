//===- MoertToEmitC.h - moert calls to EmitC --------------------*- C++ -*-===//

#ifndef MOE_PASSES_CONVERSION_MOERTTOEMITC_MOERTTOEMITC_H
#define MOE_PASSES_CONVERSION_MOERTTOEMITC_MOERTTOEMITC_H

#include "mlir/Transforms/DialectConversion.h"

namespace mlir::moert {

/// moert types as the C types of runtime/moert.h (opaque EmitC types).
void populateMoertToEmitCTypeConversions(TypeConverter &converter);

/// One pattern per moert op: a call of its runtime function whose status is
/// checked (a failure returns it, naming the layer and the call), and the
/// model entries (`moert.entry` funcs) as exported C functions.
void populateMoertToEmitCPatterns(const TypeConverter &converter,
                                  RewritePatternSet &patterns);

} // namespace mlir::moert

#endif // MOE_PASSES_CONVERSION_MOERTTOEMITC_MOERTTOEMITC_H
