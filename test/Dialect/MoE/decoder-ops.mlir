// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --verify-roundtrip --mlir-print-op-generic | moe-opt | FileCheck %s

// The decoder ops around the FFN stack: embedding, norms, attention over an
// explicit KV cache, LM head and greedy argmax.

// CHECK-LABEL: func.func @decoder
// CHECK-SAME: %[[CACHE:[^:]*]]: !moe.kv_cache<2, 16, f32>
func.func @decoder(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %cache: !moe.kv_cache<2, 16, f32>,
    %emb: tensor<512x64xf32> {moe.weight = "model.embed_tokens.weight"},
    %norm: tensor<64xf32> {moe.weight = "model.norm.weight"},
    %wq: tensor<64x64xf32> {moe.weight = "q"}, %wk: tensor<32x64xf32> {moe.weight = "k"},
    %wv: tensor<32x64xf32> {moe.weight = "v"}, %wo: tensor<64x64xf32> {moe.weight = "o"},
    %bq: tensor<64xf32> {moe.weight = "bq"}, %bk: tensor<32xf32> {moe.weight = "bk"},
    %bv: tensor<32xf32> {moe.weight = "bv"},
    %qn: tensor<16xf32> {moe.weight = "qn"}, %kn: tensor<16xf32> {moe.weight = "kn"})
    -> (tensor<?x512xf32>, tensor<?xi32>) {
  // CHECK: %[[X:.*]] = moe.embedding %{{.*}}, %{{.*}} : tensor<?xi32>, tensor<512x64xf32> -> tensor<?x64xf32>
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<512x64xf32> -> tensor<?x64xf32>
  // CHECK: %[[N:.*]] = moe.rms_norm %[[X]], %{{.*}} epsilon {{.*}} : tensor<?x64xf32>, tensor<64xf32>
  %n = moe.rms_norm %x, %norm epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
  // CHECK: moe.attention %[[N]] positions %{{.*}} sequences %{{.*}} cache %[[CACHE]] : <2, 16, f32> q %{{.*}} k %{{.*}} v %{{.*}} o %{{.*}} heads 4 kv_heads 2 head_dim 16 rope <theta = 1.0e+06> : tensor<?x64xf32>, tensor<?xi32>
  %a = moe.attention %n positions %pos sequences %seq cache %cache : !moe.kv_cache<2, 16, f32>
      q %wq k %wk v %wv o %wo heads 4 kv_heads 2 head_dim 16 rope <theta = 1.0e6>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  // CHECK: moe.attention {{.*}} bias(%{{.*}}, %{{.*}}, %{{.*}} : tensor<64xf32>, tensor<32xf32>, tensor<32xf32>) qk_norm(%{{.*}}, %{{.*}} : tensor<16xf32>, tensor<16xf32>) epsilon 1.000000e-05 heads 4 kv_heads 2 head_dim 16 rope <type = yarn, factor = 4.0, original_max_position = 64, attention_factor = 1.1386>
  %b = moe.attention %a positions %pos sequences %seq cache %cache : !moe.kv_cache<2, 16, f32>
      q %wq k %wk v %wv o %wo bias(%bq, %bk, %bv : tensor<64xf32>, tensor<32xf32>, tensor<32xf32>)
      qk_norm(%qn, %kn : tensor<16xf32>, tensor<16xf32>) epsilon 1.0e-5
      heads 4 kv_heads 2 head_dim 16 rope <type = yarn, factor = 4.0, original_max_position = 64, attention_factor = 1.1386>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  // CHECK: %[[G:.*]] = moe.gather_rows %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %g = moe.gather_rows %b, %pos : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  // CHECK: %[[L:.*]] = moe.lm_head %[[G]], %{{.*}} : tensor<?x64xf32>, tensor<512x64xf32> -> tensor<?x512xf32>
  %l = moe.lm_head %g, %emb : tensor<?x64xf32>, tensor<512x64xf32> -> tensor<?x512xf32>
  // CHECK: %[[I:.*]] = moe.argmax %[[L]] : tensor<?x512xf32> -> tensor<?xi32>
  %i = moe.argmax %l : tensor<?x512xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x512xf32>, tensor<?xi32>
}

// CHECK-LABEL: func.func @rope_types
// CHECK: rope <type = linear, factor = 2.0>
// CHECK: rope <type = llama3, theta = 5.0e+05, factor = 8.0, original_max_position = 8192>
func.func @rope_types(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %cache: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %a = moe.attention %x positions %pos sequences %pos cache %cache : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w heads 4 kv_heads 4 head_dim 16 rope <type = linear, factor = 2.0>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %b = moe.attention %x positions %pos sequences %pos cache %cache : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w heads 4 kv_heads 4 head_dim 16
      rope <type = llama3, theta = 5.0e5, factor = 8.0, original_max_position = 8192>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %a, %b : tensor<?x64xf32>, tensor<?x64xf32>
}

// DBRX's attention: q, k and v clamped to [-8, 8].
// CHECK-LABEL: func.func @clip_qkv
// CHECK: moe.attention {{.*}} heads 4 kv_heads 2 head_dim 16 clip_qkv 8.000000e+00 rope <theta = 5.0e+05>
func.func @clip_qkv(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %cache: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>) -> tensor<?x64xf32> {
  %a = moe.attention %x positions %pos sequences %pos cache %cache : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w heads 4 kv_heads 2 head_dim 16 clip_qkv 8.0 rope <theta = 5.0e5>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %a : tensor<?x64xf32>
}

// Granite: the softmax scaled by attention_multiplier, the output, the
// embeddings and the logits by their multipliers.
// CHECK-LABEL: func.func @granite_scales
// CHECK: moe.attention {{.*}} heads 4 kv_heads 2 head_dim 16 scale 1.562500e-02 rope <>
// CHECK: moe.scale %{{.*}} factor 2.200000e-01 : tensor<?x64xf32>
// CHECK: moe.scale %{{.*}} factor 0.16666666666666666 : tensor<?x128xf32>
func.func @granite_scales(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %cache: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>, %logits: tensor<?x128xf32>) -> (tensor<?x64xf32>, tensor<?x128xf32>) {
  %a = moe.attention %x positions %pos sequences %pos cache %cache : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w heads 4 kv_heads 2 head_dim 16 scale 0.015625 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %s = moe.scale %a factor 0.22 : tensor<?x64xf32>
  %l = moe.scale %logits factor 0.16666666666666666 : tensor<?x128xf32>
  return %s, %l : tensor<?x64xf32>, tensor<?x128xf32>
}

// gpt-oss's attention: per-head sinks and a sliding window.
// CHECK-LABEL: func.func @sinks_and_window
// CHECK: moe.attention {{.*}} sinks %{{.*}} : tensor<4xf32> heads 4 kv_heads 4 head_dim 16 sliding_window 128 rope <>
// CHECK: moe.attention {{.*}} heads 4 kv_heads 4 head_dim 16 rope <>
func.func @sinks_and_window(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %cache: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>, %sinks: tensor<4xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %a = moe.attention %x positions %pos sequences %pos cache %cache : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w sinks %sinks : tensor<4xf32> heads 4 kv_heads 4 head_dim 16 sliding_window 128 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %b = moe.attention %x positions %pos sequences %pos cache %cache : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w heads 4 kv_heads 4 head_dim 16 sliding_window 0 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %a, %b : tensor<?x64xf32>, tensor<?x64xf32>
}
