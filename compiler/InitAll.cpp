//===- InitAll.cpp - what the moe-mlir tools register ---------------------===//

#include "compiler/InitAll.h"

#include "compiler/Export/ToCpp.h"
#include "compiler/Import/Importers.h"
#include "dialects/moe/IR/MoeDialect.h"
#include "dialects/moert/IR/MoertDialect.h"
#include "dialects/moert/Transforms/Passes.h"
#include "passes/Conversion/MoeToMoert/Passes.h"
#include "passes/Conversion/MoertToEmitC/Passes.h"
#include "passes/Fusion/Passes.h"
#include "passes/Parallelism/Passes.h"
#include "passes/Pipelines/Pipelines.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void mlir::moe::registerDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::moe::MoeDialect, mlir::moert::MoertDialect,
                  mlir::func::FuncDialect, mlir::arith::ArithDialect,
                  mlir::tensor::TensorDialect, mlir::shard::ShardDialect,
                  mlir::emitc::EmitCDialect>();
}

void mlir::moe::registerPasses() {
  mlir::moe::registerParallelismPasses();
  mlir::moe::registerFusionPasses();
  mlir::moert::registerMoertPasses();
  mlir::moe::registerMoeToMoertPasses();
  mlir::moert::registerMoertToEmitCPasses();
  mlir::moe::registerPipelines();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  mlir::registerInlinerPass();
  // Graphviz of the IR (docs name it to see a plan's dataflow).
  mlir::registerViewOpGraph();
}

void mlir::moe::registerTranslations() {
  registerImporters();
  registerExportToCpp();
}
