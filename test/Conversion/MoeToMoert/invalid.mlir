// RUN: moe-opt %s -split-input-file --moe-lower-to-runtime="tokens=8" -verify-diagnostics
// RUN: not moe-opt %s -split-input-file --moe-lower-to-runtime 2>&1 | FileCheck %s --check-prefix=NOTOKENS

// NOTOKENS: error: moe-lower-to-runtime needs the most tokens per rank per step: pass tokens=N or set 'moert.max_tokens' on the module

// Tensor-parallel MLPs gather tokens (axis 0) over the tp grid axis only.
shard.grid @grid(shape = 1x1x2)
func.func @tp_axis(%x: tensor<?x64xf32>, %w1: tensor<64x128xf32> {moe.weight = "w1"}, %w2: tensor<128x64xf32> {moe.weight = "w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    // expected-error @below {{moe-lower-to-runtime lowers 'shard.all_gather' only over the tokens (axis 0) and grid axis 2 (tp) of its layer's {dp, ep, tp} grid, summing}}
    %g = shard.all_gather %h on @grid grid_axes = [2] gather_axis = 1 : tensor<?x64xf32> -> tensor<?x128xf32>
    %d = moe.dense_ffn relu %g up %w1 down %w2 : (tensor<?x128xf32>, tensor<64x128xf32>, tensor<128x64xf32>) -> tensor<?x128xf32>
    %s = shard.reduce_scatter %d on @grid grid_axes = [2] scatter_axis = 1 : tensor<?x128xf32> -> tensor<?x64xf32>
    moe.yield %s : tensor<?x64xf32>
  } {moe.plan = #moe.plan<dp = 1, ep = 1, tp = 2>}
  return %y : tensor<?x64xf32>
}

// -----

func.func @constant_mix(%x: tensor<?x64xf32>, %w1: tensor<64x64xf32> {moe.weight = "w1"}, %w2: tensor<64x64xf32> {moe.weight = "w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %d = moe.dense_ffn relu %h up %w1 down %w2 : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
    // expected-error @below {{moe-lower-to-runtime needs the coefficient form of moe.residual_mix}}
    %r = moe.residual_mix %d, %d constant [0.25, 0.75] : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// expected-error @below {{argument #1 has no 'moe.weight' key to load it from}}
func.func @unnamed(%x: tensor<?x64xf32>, %w1: tensor<64x64xf32>, %w2: tensor<64x64xf32> {moe.weight = "w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %d = moe.dense_ffn relu %h up %w1 down %w2 : (tensor<?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
    moe.yield %d : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}
