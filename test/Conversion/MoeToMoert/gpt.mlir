// RUN: moe-opt %s -split-input-file --convert-moe-to-moert="tokens=8 max-batch=2 max-seq=32" -verify-diagnostics | FileCheck %s

// LayerNorm and a bias add lower to their calls; a moe.weight_rows weight
// (part 1 of 3 in each of 2 row groups of "fused": [2 * 3 * 16, 64]) loads
// through the fused view [2, 16, 64] at offset 16 * 64, groups 3 * 16 * 64
// apart.
// CHECK-LABEL: func.func @norms_init(
// CHECK: moert.load_fused_weight %{{.*}}, %{{.*}} "fused" experts [0, 1) fused [96, 64] offset 1024 expert_stride 0 strides [3072, 64, 1] shape [2, 16, 64] begin [0, 0, 0] end [0, 0, 0] -> %{{.*}} : !moert.view<f32, 2048>
// CHECK-LABEL: func.func @norms_step(
// CHECK: moert.layer_norm %{{.*}}, %{{.*}}, %{{.*}} bias %{{.*}} -> %[[N:.*]] tokens %{{.*}} hidden 64 epsilon 9.99999974E-6
// CHECK: moert.dense_ffn
// CHECK: moert.bias_add %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64
func.func @norms(%x: tensor<?x64xf32>,
    %w: tensor<64xf32> {moe.weight = "ln.weight"}, %b: tensor<64xf32> {moe.weight = "ln.bias"},
    %up: tensor<32x64xf32> {moe.weight = "fused", moe.weight_rows = array<i64: 2, 3, 1>},
    %down: tensor<64x32xf32> {moe.weight = "down"},
    %bias: tensor<64xf32> {moe.weight = "out.bias"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %n = moe.layer_norm %h, %w bias %b epsilon 1.0e-5 : tensor<?x64xf32>, tensor<64xf32>, tensor<64xf32>
    %d = moe.dense_ffn gelu %n up %up down %down : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
    %o = moe.bias_add %d, %bias : tensor<?x64xf32>, tensor<64xf32>
    moe.yield %o : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// expected-error @below {{argument #1: 32 rows do not split into 5 groups of parts}}
func.func @bad_groups(%x: tensor<?x64xf32>,
    %up: tensor<32x64xf32> {moe.weight = "fused", moe.weight_rows = array<i64: 5, 3, 1>},
    %down: tensor<64x32xf32> {moe.weight = "down"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %d = moe.dense_ffn gelu %h up %up down %down : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
    moe.yield %d : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// Positions update the token embedding in place: a second position
// embedding (on the first one's result) has no embedding to update.
func.func @twice(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.kv_cache<4, 16, f32>,
    %emb: tensor<96x64xf32> {moe.weight = "wte"},
    %wpe: tensor<32x64xf32> {moe.weight = "wpe"},
    %wq: tensor<64x64xf32> {moe.weight = "q"}, %wk: tensor<64x64xf32> {moe.weight = "k"},
    %wv: tensor<64x64xf32> {moe.weight = "v"}, %wo: tensor<64x64xf32> {moe.weight = "o"},
    %norm: tensor<64xf32> {moe.weight = "norm"})
    -> (tensor<?x96xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %p = moe.position_embedding %x positions %pos table %wpe : tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xf32>
  // expected-error @below {{convert-moe-to-moert adds positions to the token embedding only (its one user)}}
  %q = moe.position_embedding %p positions %pos table %wpe : tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xf32>
  %y = moe.layer 0 (%h = %q) : tensor<?x64xf32> {
    %a = moe.attention %h positions %pos sequences %seq cache %cache : !moe.kv_cache<4, 16, f32>
        q %wq k %wk v %wv o %wo heads 4 kv_heads 4 head_dim 16
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  %g = moe.gather_rows %y, %rows : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %f = moe.layer_norm %g, %norm epsilon 1.0e-5 : tensor<?x64xf32>, tensor<64xf32>
  %l = moe.lm_head %f, %emb : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %i = moe.argmax %l : tensor<?x96xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x96xf32>, tensor<?xi32>
}
