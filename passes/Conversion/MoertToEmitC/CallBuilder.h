//===- CallBuilder.h - the C arguments of one runtime call ------*- C++ -*-===//
//
// A moert call op's generated `buildCall` (dialects/moert/IR/MoertCall.td)
// appends its C arguments here in ABI order: `arg` for a plain argument,
// and one encoder per struct the ABI takes (gate config, FFN descriptors,
// weight request, rank table) or per value it returns through a pointer
// (`result`). `emit` then writes the call, its status check and the loads
// of its results.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_CONVERSION_MOERTTOEMITC_CALLBUILDER_H
#define MOE_PASSES_CONVERSION_MOERTTOEMITC_CALLBUILDER_H

#include "passes/Conversion/MoertToEmitC/CEnums.h"

#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/Transforms/DialectConversion.h"

#include <optional>
#include <type_traits>

namespace mlir::moert {

/// The runtime's dtype enumerator of a view element type ("MOERT_F32").
std::string cDtype(Type elementType);
/// `text` as a C string literal, quotes included.
std::string cStringLiteral(StringRef text);
/// The layer a call inside a `moert.layer` belongs to, for its failure
/// message (the layer is inlined before its calls are converted).
constexpr StringLiteral kLayerOfCallAttrName = "moert.layer_of_call";

class CallBuilder {
public:
  CallBuilder(ConversionPatternRewriter &rewriter,
              const TypeConverter &converter, Operation *op)
      : rewriter(rewriter), converter(converter), op(op),
        context(op->getContext()), loc(op->getLoc()) {}

  /// A converted operand; a missing optional one is an absent view.
  void arg(Value value);
  /// A static size.
  void arg(int64_t value);
  /// An f32 constant, printed so that it reads back exactly.
  void arg(APFloat value);
  /// A dialect enum as its runtime/moert.h enumerator.
  template <typename DialectEnum,
            std::enable_if_t<std::is_enum_v<DialectEnum>, int> = 0>
  void arg(DialectEnum value) {
    literal(cEnumerator(value));
  }

  // Encoders.
  void gateConfig(moe::RoutingAttr routing, int64_t experts,
                  int64_t staticCapacity = 0);
  void ffnDesc(Value gate, Value up, Value upBias, Value down, Value downBias,
               Value downBiasIf, moe::Activation activation, int64_t hidden,
               int64_t ffn);
  void packedFfnDesc(moe::Activation activation, int64_t hidden, int64_t ffn,
                     Value gateUp, Value down);
  void quantizedFfnDesc(WeightFormat format, int64_t blockRows,
                        int64_t blockCols, moe::Activation activation,
                        int64_t hidden, int64_t ffn, Value gate,
                        Value gateScales, Value up, Value upScales, Value down,
                        Value downScales);
  void sharedFfn(moe::Activation activation, int64_t hidden, int64_t ffn,
                 Value gateUp, Value down, Value input, Value output,
                 Value tokens);
  void weightRequest(StringRef key, ArrayRef<int64_t> shape,
                     ArrayRef<int64_t> begin, ArrayRef<int64_t> end,
                     std::optional<ArrayRef<int64_t>> expertRange,
                     Value expertOffset, ValueRange offsets,
                     int64_t dstExpertStride);
  /// &moert_fused_view_t (a local initialised in one aggregate).
  void fusedView(ArrayRef<int64_t> shape, int64_t offset, int64_t expertStride,
                 ArrayRef<int64_t> strides);
  void rankTable(DenseIntElementsAttr groups);
  /// &moert_rope_config_t from the attribute.
  void ropeConfig(moe::RopeAttr rope);
  /// &local for the op's next result, the local set to `initial` if given.
  void result(Value initial = {});

  /// A C expression as it is.
  void literal(StringRef text);

  /// status = callee(arguments); a failure returns it naming the call; the
  /// op is replaced by its results' locals.
  LogicalResult emit(StringRef callee);
  /// callee(arguments) with no status to check.
  emitc::CallOpaqueOp emitUnchecked(StringRef callee, TypeRange results);

private:
  Value literalValue(Type type, StringRef text);
  Value localStruct(StringRef type);
  void assignMember(Value record, StringRef member, Value value);
  void assignLiteral(Value record, StringRef member, StringRef type,
                     StringRef text);
  Value addressOf(Value lvalue);
  Value absentView();
  Value i64(int64_t value);

  ConversionPatternRewriter &rewriter;
  const TypeConverter &converter;
  Operation *op;
  MLIRContext *context;
  Location loc;
  // emitc.call_opaque's `args`: an index into `operands`, or a literal.
  SmallVector<Attribute> args;
  SmallVector<Value> operands;
  SmallVector<Value> resultLocals;
};

} // namespace mlir::moert

#endif // MOE_PASSES_CONVERSION_MOERTTOEMITC_CALLBUILDER_H
