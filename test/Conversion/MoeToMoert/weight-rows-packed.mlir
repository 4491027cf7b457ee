// RUN: moe-opt %s --moe-fuse-kernels --convert-moe-to-moert="tokens=16" -verify-diagnostics

// A moe.weight_rows part loads through a fused view of its own; packed with
// its up weight into one gate_up slot it would be read whole, so it is an
// error.
// expected-error @below {{argument #5: a 'moe.weight_rows' part cannot be packed into a gate_up weight}}
func.func @packed(%x: tensor<?x64xf32>,
    %wg: tensor<8x64xf32> {moe.weight = "g"},
    %w1: tensor<8x128x64xf32> {moe.weight = "e.{e}.w1"},
    %w3: tensor<8x128x64xf32> {moe.weight = "e.{e}.w3"},
    %w2: tensor<8x64x128xf32> {moe.weight = "e.{e}.w2"},
    %sg: tensor<32x64xf32> {moe.weight = "gate_up", moe.weight_rows = array<i64: 2, 2, 0>},
    %su: tensor<32x64xf32> {moe.weight = "su"},
    %sd: tensor<64x32xf32> {moe.weight = "sd"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %l = moe.router %h, %wg : tensor<?x64xf32>, tensor<8x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<8x?x64xf32>
    %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %sh = moe.dense_ffn silu %h gate %sg up %su down %sd : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
    %r = moe.shared_add %o, %sh : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}
