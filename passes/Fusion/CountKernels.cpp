//===- CountKernels.cpp - moert-count-kernels -----------------------------===//
//
// Counts what a lowered model asks of the runtime, so that fused and unfused
// lowerings compare by the IR itself rather than by timing.
//
//===----------------------------------------------------------------------===//

#include "passes/Fusion/Passes.h"

#include "dialects/moert/IR/MoertOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_COUNTKERNELS
#include "passes/Fusion/Passes.h.inc"
} // namespace mlir::moe

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

/// The views a runtime call writes; null for ops that launch nothing.
std::optional<SmallVector<Value>> writtenViews(Operation *op) {
  return llvm::TypeSwitch<Operation *, std::optional<SmallVector<Value>>>(op)
      .Case([](RouterOp o) { return SmallVector<Value>{o.getLogits()}; })
      .Case([](GateOp o) {
        return SmallVector<Value>{o.getIds(), o.getWeights(), o.getSlots(),
                                  o.getCounts()};
      })
      .Case([](GateScoresOp o) { return SmallVector<Value>{o.getScores()}; })
      .Case([](GateSelectOp o) {
        return SmallVector<Value>{o.getIds(), o.getWeights()};
      })
      .Case([](GateSlotsOp o) {
        return SmallVector<Value>{o.getSlots(), o.getCounts()};
      })
      .Case(
          [](GateNormalizeOp o) { return SmallVector<Value>{o.getWeights()}; })
      .Case([](DispatchOp o) { return SmallVector<Value>{o.getBuffer()}; })
      .Case<CombineOp, FusedCombineOp, ResidualMixOp, SharedAddOp, AddOp>(
          [](auto o) { return SmallVector<Value>{o.getOut()}; })
      .Case<ExpertsOp, ExpertsLinearOp, DenseFfnOp>(
          [](auto o) { return SmallVector<Value>{o.getOutput()}; })
      .Case<ActivationOp, MultiplyOp>(
          [](auto o) { return SmallVector<Value>{o.getOut()}; })
      .Case([](FusedExpertsOp o) {
        SmallVector<Value> out = {o.getOutput()};
        if (o.getSharedOutput())
          out.push_back(o.getSharedOutput());
        return out;
      })
      .Case<AllToAllOp, AllReduceOp, AllGatherOp, ReduceScatterOp>(
          [](auto o) { return SmallVector<Value>{o.getRecv()}; })
      .Default([](Operation *) { return std::nullopt; });
}

int64_t viewBytes(Value v) {
  auto type = cast<ViewType>(v.getType());
  return type.getCount() * type.getElementBytes();
}

/// Moert ops that launch nothing: buffers, views, rank queries, groups,
/// timing, statistics, weight loading (init only).
bool launchesNothing(Operation *op) {
  return isa<AllocOp, ViewOp, RankOp, KeepGroupOp, GroupOp, LayerOp,
             RecordDropsOp, LoadWeightOp>(op);
}

FailureOr<Traffic> countOp(Operation *op) {
  Traffic t;
  if (isa<AllReduceI64Op>(op)) { // one host scalar
    t.launches = 1;
    t.read = t.written = 8;
    return t;
  }
  std::optional<SmallVector<Value>> written = writtenViews(op);
  if (!written) {
    // A moert op this pass does not know would make the counts wrong.
    if (isa_and_nonnull<MoertDialect>(op->getDialect()) && !launchesNothing(op))
      return op->emitOpError("is not classified by moert-count-kernels");
    return t;
  }
  t.launches = 1;
  llvm::SmallPtrSet<Value, 8> outs(written->begin(), written->end());
  llvm::SmallPtrSet<Value, 16> ins;
  for (Value v : op->getOperands())
    if (isa<ViewType>(v.getType()) && !outs.contains(v) && ins.insert(v).second)
      t.read += viewBytes(v);
  for (Value v : outs)
    t.written += viewBytes(v);
  // An in-place output (addend == out, normalised weights) is also read.
  for (Value v : outs)
    if (llvm::count(op->getOperands(), v) > 1 || isa<GateNormalizeOp>(op))
      t.read += viewBytes(v);
  return t;
}

void print(llvm::raw_ostream &os, StringRef what, const Traffic &t) {
  os << what << ": launches " << t.launches << " read " << t.read << " written "
     << t.written << "\n";
}

struct CountKernelsPass
    : public mlir::moe::impl::CountKernelsBase<CountKernelsPass> {
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
      llvm::MapVector<StringRef, Traffic> byKernel;
      auto count = [&](Operation *op) -> FailureOr<Traffic> {
        FailureOr<Traffic> c = countOp(op);
        if (succeeded(c) && c->launches)
          byKernel[op->getName().getStringRef()] += *c;
        return c;
      };
      for (Operation &op : func.getBody().front()) {
        if (auto layer = dyn_cast<LayerOp>(op)) {
          Traffic t;
          WalkResult walked = layer.getBody().walk([&](Operation *inner) {
            FailureOr<Traffic> c = count(inner);
            if (failed(c))
              return WalkResult::interrupt();
            t += *c;
            return WalkResult::advance();
          });
          if (walked.wasInterrupted())
            return signalPassFailure();
          print(llvm::outs(), "layer " + std::to_string(layer.getIndex()), t);
          total += t;
        } else {
          FailureOr<Traffic> c = count(&op);
          if (failed(c))
            return signalPassFailure();
          total += *c;
        }
      }
      print(llvm::outs(), "total", total);
      for (auto &[name, t] : byKernel)
        print(llvm::outs(), ("kernel " + name).str(), t);
    }
  }
};

} // namespace
