//===- MoertDialect.cpp - moert dialect registration and types ------------===//

#include "dialects/moert/IR/MoertDialect.h"
#include "dialects/moert/IR/MoertOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moert;

#include "dialects/moert/IR/MoertDialect.cpp.inc"
#include "dialects/moert/IR/MoertEnums.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/moert/IR/MoertTypes.cpp.inc"

void MoertDialect::initialize() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "dialects/moert/IR/MoertTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/moert/IR/MoertOps.cpp.inc"
      >();
}

LogicalResult BufferType::verify(function_ref<InFlightDiagnostic()> emitError,
                                 int64_t bytes) {
  if (bytes <= 0)
    return emitError() << "buffer size must be positive, got " << bytes;
  return success();
}

/// The storage dtypes of runtime/moert.h (moert_dtype_t).
static int64_t storageBytes(Type type) {
  if (type.isF32() || type.isInteger(32))
    return 4;
  if (type.isF16() || type.isBF16())
    return 2;
  if (type.isInteger(64))
    return 8;
  if (isa<Float8E4M3FNType>(type) || type.isUnsignedInteger(8))
    return 1;
  return 0;
}

LogicalResult ViewType::verify(function_ref<InFlightDiagnostic()> emitError,
                               Type elementType, int64_t count) {
  if (!storageBytes(elementType))
    return emitError() << "view element type must be f32, f16, bf16, i32, "
                          "i64, f8E4M3FN or ui8, got "
                       << elementType;
  if (count <= 0)
    return emitError() << "view element count must be positive, got " << count;
  return success();
}

int64_t ViewType::getElementBytes() const {
  return storageBytes(getElementType());
}
