//===- CountKernels.cpp - moert-count-kernels -----------------------------===//
//
// Counts what a lowered model asks of the runtime, so that fused and unfused
// lowerings compare by the IR itself rather than by timing. Everything it
// knows comes from the ops' declarations: which calls are kernels
// (RuntimeCallOpInterface's kernel family) and which views they read and
// write (their memory effects).
//
//===----------------------------------------------------------------------===//

#include "dialects/moert/Transforms/Passes.h"

#include "dialects/moert/IR/MoertOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moert {
#define GEN_PASS_DEF_COUNTKERNELS
#include "dialects/moert/Transforms/Passes.h.inc"
} // namespace mlir::moert

using namespace mlir;
using namespace mlir::moert;

namespace {

struct Traffic {
  int64_t launches = 0, read = 0, written = 0;
  Traffic &operator+=(const Traffic &o) {
    launches += o.launches;
    read += o.read;
    written += o.written;
    return *this;
  }
};

int64_t viewBytes(Value v) {
  auto type = cast<ViewType>(v.getType());
  return type.getCount() * type.getElementBytes();
}

/// One launch reading and writing its distinct views; nothing for ops that
/// are no kernel (views, groups, weight loading, statistics).
Traffic countOp(Operation *op) {
  auto call = dyn_cast<RuntimeCallOpInterface>(op);
  if (!call || call.getKernelFamily().empty())
    return {};
  SmallVector<MemoryEffects::EffectInstance> effects;
  if (auto memory = dyn_cast<MemoryEffectOpInterface>(op))
    memory.getEffects(effects);
  llvm::SetVector<Value> read, written;
  for (const MemoryEffects::EffectInstance &effect : effects) {
    Value v = effect.getValue();
    if (!v || !isa<ViewType>(v.getType()))
      continue;
    if (isa<MemoryEffects::Read>(effect.getEffect()))
      read.insert(v);
    else if (isa<MemoryEffects::Write>(effect.getEffect()))
      written.insert(v);
  }
  Traffic t;
  t.launches = 1;
  for (Value v : read)
    t.read += viewBytes(v);
  for (Value v : written)
    t.written += viewBytes(v);
  return t;
}

void print(llvm::raw_ostream &os, StringRef what, const Traffic &t) {
  os << what << ": launches " << t.launches << " read " << t.read << " written "
     << t.written << "\n";
}

struct CountKernelsPass
    : public mlir::moert::impl::CountKernelsBase<CountKernelsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto tokens = module->getAttrOfType<IntegerAttr>("moert.max_tokens");
    for (auto func : module.getOps<func::FuncOp>()) {
      auto entry = func->getAttrOfType<StringAttr>("moert.entry");
      if (!entry || entry.getValue() != "step")
        continue;
      llvm::outs() << "kernels @" << func.getSymName() << " tokens "
                   << (tokens ? tokens.getInt() : 0) << "\n";
      Traffic total;
      llvm::MapVector<StringRef, Traffic> byKernel, byFamily;
      auto count = [&](Operation *op) {
        Traffic t = countOp(op);
        if (t.launches) {
          byKernel[op->getName().getStringRef()] += t;
          byFamily[cast<RuntimeCallOpInterface>(op).getKernelFamily()] += t;
        }
        return t;
      };
      for (Operation &op : func.getBody().front()) {
        if (auto layer = dyn_cast<LayerOp>(op)) {
          Traffic t;
          layer.getBody().walk([&](Operation *inner) { t += count(inner); });
          print(llvm::outs(), "layer " + std::to_string(layer.getIndex()), t);
          total += t;
        } else {
          total += count(&op);
        }
      }
      print(llvm::outs(), "total", total);
      for (auto &[name, t] : byKernel)
        print(llvm::outs(), ("kernel " + name).str(), t);
      for (auto &[family, t] : byFamily)
        print(llvm::outs(), ("family " + family).str(), t);
    }
  }
};

} // namespace
