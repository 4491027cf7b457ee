//===- MoeDialect.cpp - moe dialect registration and attribute checks ----===//

#include "dialects/moe/IR/MoeDialect.h"
#include "dialects/moe/IR/MoeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moe;

#include "dialects/moe/IR/MoeDialect.cpp.inc"
#include "dialects/moe/IR/MoeEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/moe/IR/MoeAttrs.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/moe/IR/MoeTypes.cpp.inc"

void MoeDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/moe/IR/MoeAttrs.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "dialects/moe/IR/MoeTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/moe/IR/MoeOps.cpp.inc"
      >();
}

Operation *MoeDialect::materializeConstant(OpBuilder &builder, Attribute value,
                                           Type type, Location loc) {
  return arith::ConstantOp::materialize(builder, value, type, loc);
}

// `moe.weight` names the safetensors key a weight argument is loaded from;
// `moe.shard` says how the parallelism pass split it.
LogicalResult MoeDialect::verifyRegionArgAttribute(Operation *op,
                                                   unsigned regionIndex,
                                                   unsigned argIndex,
                                                   NamedAttribute attribute) {
  if (attribute.getName() == kShardAttrName) {
    auto shard = dyn_cast<ShardAttr>(attribute.getValue());
    if (!shard)
      return op->emitError() << "'" << kShardAttrName << "' of argument #"
                             << argIndex << " must be a #moe.shard attribute";
    auto type = dyn_cast<RankedTensorType>(
        op->getRegion(regionIndex).getArgument(argIndex).getType());
    if (!type || type.getRank() != static_cast<int64_t>(shard.getDims().size()))
      return op->emitError()
             << "'" << kShardAttrName << "' of argument #" << argIndex
             << " names " << shard.getDims().size()
             << " dimensions but the argument has type "
             << op->getRegion(regionIndex).getArgument(argIndex).getType();
    return success();
  }
  if (attribute.getName() == kWeightRowsAttrName) {
    auto rows = dyn_cast<DenseI64ArrayAttr>(attribute.getValue());
    auto type = dyn_cast<RankedTensorType>(
        op->getRegion(regionIndex).getArgument(argIndex).getType());
    if (!rows || rows.size() != 3)
      return op->emitError()
             << "'" << kWeightRowsAttrName << "' of argument #" << argIndex
             << " must be array<i64: groups, parts, part>";
    int64_t groups = rows[0], parts = rows[1], part = rows[2];
    if (groups < 1 || parts < 1 || part < 0 || part >= parts)
      return op->emitError() << "'" << kWeightRowsAttrName << "' of argument #"
                             << argIndex << ": part " << part << " of " << parts
                             << " in " << groups << " groups is not a part";
    if (!type || type.getRank() < 1 || type.getRank() > 3)
      return op->emitError()
             << "'" << kWeightRowsAttrName << "' of argument #" << argIndex
             << " needs a tensor of rank 1 to 3, got "
             << op->getRegion(regionIndex).getArgument(argIndex).getType();
    return success();
  }
  if (attribute.getName() == kFusedViewAttrName) {
    auto view = dyn_cast<FusedViewAttr>(attribute.getValue());
    if (!view)
      return op->emitError()
             << "'" << kFusedViewAttrName << "' of argument #" << argIndex
             << " must be a #moe.fused_view attribute";
    auto type = dyn_cast<RankedTensorType>(
        op->getRegion(regionIndex).getArgument(argIndex).getType());
    auto function = dyn_cast<FunctionOpInterface>(op);
    auto key = function ? function.getArgAttrOfType<StringAttr>(argIndex,
                                                                kWeightAttrName)
                        : StringAttr();
    if (!key || key.getValue().contains(kExpertPlaceholder))
      return op->emitError()
             << "'" << kFusedViewAttrName << "' of argument #" << argIndex
             << " needs a '" << kWeightAttrName
             << "' key naming one tensor (no '" << kExpertPlaceholder << "')";
    int64_t views = view.getStrides().size();
    if (!type || !type.hasStaticShape() ||
        (type.getRank() != views && type.getRank() != views + 1))
      return op->emitError()
             << "'" << kFusedViewAttrName << "' of argument #" << argIndex
             << " has " << views << " strides: the argument must be a static "
             << "tensor of that rank, or one more (the experts), got "
             << op->getRegion(regionIndex).getArgument(argIndex).getType();
    bool stacked = type.getRank() == views + 1;
    if (!stacked && view.getExpertStride() != 0)
      return op->emitError()
             << "'" << kFusedViewAttrName << "' of argument #" << argIndex
             << " has an expert stride but the argument has "
                "no expert dimension";
    ArrayRef<int64_t> extents = type.getShape();
    if (!view.fits(stacked ? extents.front() : 1,
                   stacked ? extents.drop_front() : extents))
      return op->emitError() << "'" << kFusedViewAttrName << "' of argument #"
                             << argIndex << " reaches past the end of its "
                             << "fused tensor";
    return success();
  }
  if (attribute.getName() != kWeightAttrName)
    return op->emitError() << "unknown argument attribute '"
                           << attribute.getName().getValue() << "'";
  auto key = dyn_cast<StringAttr>(attribute.getValue());
  if (!key || key.getValue().empty())
    return op->emitError() << "'" << kWeightAttrName << "' of argument #"
                           << argIndex << " must be a non-empty string";
  StringRef text = key.getValue();
  size_t first = text.find(kExpertPlaceholder);
  if (first != StringRef::npos &&
      text.find(kExpertPlaceholder, first + 1) != StringRef::npos)
    return op->emitError() << "weight key '" << text << "' of argument #"
                           << argIndex << " has more than one '"
                           << kExpertPlaceholder << "' placeholder";
  return success();
}

LogicalResult MoeDialect::verifyOperationAttribute(Operation *op,
                                                   NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (name == kModelTypeAttrName) {
    if (!isa<ModuleOp>(op) || !isa<StringAttr>(attribute.getValue()))
      return op->emitError()
             << "'" << name
             << "' must be a string attribute on a builtin.module";
    return success();
  }
  if (name == kPlanTableAttrName) {
    if (!isa<ModuleOp>(op) || !isa<StringAttr>(attribute.getValue()))
      return op->emitError() << "'" << name
                             << "' must be a string on a builtin.module";
    return success();
  }
  if (name == kAttentionTpAttrName) {
    auto tp = dyn_cast<IntegerAttr>(attribute.getValue());
    if (!isa<ModuleOp>(op) || !tp || tp.getInt() < 1)
      return op->emitError() << "'" << name
                             << "' must be a positive integer on a "
                                "builtin.module";
    return success();
  }
  if (name == kMeshAttrName) {
    if (!isa<ModuleOp>(op) || !isa<MeshAttr>(attribute.getValue()))
      return op->emitError()
             << "'" << name
             << "' must be a #moe.mesh attribute on a builtin.module";
    return success();
  }
  if (name == kWeightQuantAttrName) {
    auto dict = dyn_cast<DictionaryAttr>(attribute.getValue());
    auto format = dict ? dict.getAs<StringAttr>("format") : nullptr;
    auto block = dict ? dict.getAs<DenseI64ArrayAttr>("block") : nullptr;
    bool mxfp4 = format && format.getValue() == "mxfp4";
    if (!isa<ModuleOp>(op) || !dict || dict.size() != 2 || !format ||
        (format.getValue() != "fp8_e4m3" && !mxfp4) || !block ||
        block.size() != 2 || block[0] <= 0 || block[1] <= 0 ||
        (mxfp4 && (block[0] != 1 || block[1] != 32)))
      return op->emitError()
             << "'" << name
             << "' must be {format = \"fp8_e4m3\", block = array<i64: R, C>} "
                "with R, C > 0, or {format = \"mxfp4\", block = array<i64: "
                "1, 32>}, on a builtin.module";
    return success();
  }
  if (name == kPlanAttrName) {
    if (!isa<LayerOp>(op) || !isa<PlanAttr>(attribute.getValue()))
      return op->emitError()
             << "'" << name << "' must be a #moe.plan attribute on a moe.layer";
    return success();
  }
  return op->emitError() << "unknown moe dialect attribute '" << name << "'";
}
