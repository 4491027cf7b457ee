// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --verify-roundtrip --mlir-print-op-generic | moe-opt | FileCheck %s

// The PR-MoE GPT's decoder pieces: learned positions, LayerNorm, attention
// without rope whose q/k/v are parts of a fused QKV, its output bias.

// CHECK-LABEL: func.func @gpt
// CHECK-SAME: moe.weight_rows = array<i64: 4, 3, 1>
func.func @gpt(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %cache: !moe.kv_cache<4, 16, f32>,
    %emb: tensor<128x64xf32> {moe.weight = "wte"},
    %wpe: tensor<32x64xf32> {moe.weight = "wpe"},
    %lw: tensor<64xf32> {moe.weight = "ln.weight"}, %lb: tensor<64xf32> {moe.weight = "ln.bias"},
    %wq: tensor<64x64xf32> {moe.weight = "qkv.weight", moe.weight_rows = array<i64: 4, 3, 0>},
    %wk: tensor<64x64xf32> {moe.weight = "qkv.weight", moe.weight_rows = array<i64: 4, 3, 1>},
    %wv: tensor<64x64xf32> {moe.weight = "qkv.weight", moe.weight_rows = array<i64: 4, 3, 2>},
    %wo: tensor<64x64xf32> {moe.weight = "dense.weight"},
    %bo: tensor<64xf32> {moe.weight = "dense.bias"}) -> tensor<?x64xf32> {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<128x64xf32> -> tensor<?x64xf32>
  // CHECK: %[[H:.*]] = moe.position_embedding %{{.*}} positions %{{.*}} table %{{.*}} : tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xf32>
  %h = moe.position_embedding %x positions %pos table %wpe : tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xf32>
  // CHECK: %[[N:.*]] = moe.layer_norm %[[H]], %{{.*}} bias %{{.*}} epsilon 1.000000e-05 : tensor<?x64xf32>, tensor<64xf32>, tensor<64xf32>
  %n = moe.layer_norm %h, %lw bias %lb epsilon 1.0e-5 : tensor<?x64xf32>, tensor<64xf32>, tensor<64xf32>
  // CHECK: moe.layer_norm %[[N]], %{{.*}} epsilon 1.000000e-05 : tensor<?x64xf32>, tensor<64xf32>
  %m = moe.layer_norm %n, %lw epsilon 1.0e-5 : tensor<?x64xf32>, tensor<64xf32>
  // CHECK: %[[A:.*]] = moe.attention {{.*}} heads 4 kv_heads 4 head_dim 16 : tensor<?x64xf32>
  %a = moe.attention %m positions %pos sequences %seq cache %cache : !moe.kv_cache<4, 16, f32>
      q %wq k %wk v %wv o %wo heads 4 kv_heads 4 head_dim 16
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  // CHECK: moe.bias_add %[[A]], %{{.*}} : tensor<?x64xf32>, tensor<64xf32>
  %y = moe.bias_add %a, %bo : tensor<?x64xf32>, tensor<64xf32>
  return %y : tensor<?x64xf32>
}
