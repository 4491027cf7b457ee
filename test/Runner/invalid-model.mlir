// moe-run reads the weights' shapes before compiling: a model it cannot
// compile is reported, not crashed on (a non-tensor weight, a declaration).
// RUN: not moe-run %s 2>&1 | FileCheck %s
// RUN: echo 'func.func private @f(%%x: tensor<?x8xf32>)' > %t.mlir
// RUN: not moe-run %t.mlir 2>&1 | FileCheck %s --check-prefix=DECLARATION

// CHECK: error: model function argument #1 must be a weight tensor of static shape, got 'index'
// CHECK: moe-run: error: compilation failed
// DECLARATION: error: convert-moert-to-emitc: 'f' is not a model entry
// DECLARATION: moe-run: error: compilation failed
func.func @f(%x: tensor<?x64xf32>, %n: index {moe.weight = "n"}) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}
