// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2" | FileCheck %s
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4" | FileCheck %s --check-prefix=DP
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=4" 2>&1 | FileCheck %s --check-prefix=HEADS
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=3" 2>&1 | FileCheck %s --check-prefix=MESH

// Attention layers are data parallel (dp = ranks), or with attention-tp=N
// tensor parallel (Megatron style): N consecutive ranks with the same tokens
// split the heads (q/k/v rows, o columns, biases, gpt-oss's sinks; per-head
// q/k norms whole; the sliding window kept), each holds its heads' KV cache,
// and a shard.all_reduce sums the partial outputs before the o bias is added.
// CHECK: shard.grid @grid_dp2_ep1_tp2(shape = 2x1x2)
// CHECK-LABEL: func.func @decoder
// CHECK-SAME: !moe.kv_cache<1, 16, f32>
// CHECK-SAME: tensor<32x64xf32> {moe.shard = #moe.shard<[tp, none]>, moe.weight = "q"}
// CHECK-SAME: tensor<16x64xf32> {moe.shard = #moe.shard<[tp, none]>, moe.weight = "k"}
// CHECK-SAME: tensor<16x64xf32> {moe.shard = #moe.shard<[tp, none]>, moe.weight = "v"}
// CHECK-SAME: tensor<64x32xf32> {moe.shard = #moe.shard<[none, tp]>, moe.weight = "o"}
// CHECK-SAME: tensor<16xf32> {moe.shard = #moe.shard<[none]>, moe.weight = "qn"}
// CHECK-SAME: tensor<2xf32> {moe.shard = #moe.shard<[tp]>, moe.weight = "sinks"}
// CHECK-SAME: tensor<64xf32> {moe.shard = #moe.shard<[none]>, moe.weight = "o_bias"}
// CHECK: %[[A:.*]] = moe.attention {{.*}} sinks %{{.*}} : tensor<2xf32> heads 2 kv_heads 1 head_dim 16 sliding_window 8
// CHECK-NEXT: %[[S:.*]] = shard.all_reduce %[[A]] on @grid_dp2_ep1_tp2 grid_axes = [2]
// CHECK-NEXT: %[[B:.*]] = moe.bias_add %[[S]]
// CHECK-NEXT: moe.yield %[[B]]
// CHECK: {moe.plan = #moe.plan<dp = 2, ep = 1, tp = 2>}

// DP: !moe.kv_cache<2, 16, f32>
// DP-NOT: shard.all_reduce
// DP: sinks %{{.*}} : tensor<4xf32> heads 4 kv_heads 2 head_dim 16 sliding_window 8
// DP: {moe.plan = #moe.plan<dp = 4, ep = 1, tp = 1>}

// HEADS: error: 'moe.attention' op has 4 heads and 2 kv heads, which do not split 4 ways (attention-tp)
// MESH: error: attention-tp 3 does not divide the 4 ranks

func.func @decoder(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.kv_cache<2, 16, f32>,
    %emb: tensor<96x64xf32> {moe.weight = "model.embed_tokens.weight"},
    %ln: tensor<64xf32> {moe.weight = "model.layers.0.input_layernorm.weight"},
    %wq: tensor<64x64xf32> {moe.weight = "q"}, %wk: tensor<32x64xf32> {moe.weight = "k"},
    %wv: tensor<32x64xf32> {moe.weight = "v"}, %wo: tensor<64x64xf32> {moe.weight = "o"},
    %qn: tensor<16xf32> {moe.weight = "qn"}, %kn: tensor<16xf32> {moe.weight = "kn"},
    %sinks: tensor<4xf32> {moe.weight = "sinks"}, %bo: tensor<64xf32> {moe.weight = "o_bias"},
    %norm: tensor<64xf32> {moe.weight = "model.norm.weight"})
    -> (tensor<?x96xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %n = moe.rms_norm %h, %ln epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
    %a = moe.attention %n positions %pos sequences %seq cache %cache : !moe.kv_cache<2, 16, f32>
        q %wq k %wk v %wv o %wo qk_norm(%qn, %kn : tensor<16xf32>, tensor<16xf32>) epsilon 1.0e-6
        sinks %sinks : tensor<4xf32> heads 4 kv_heads 2 head_dim 16 sliding_window 8 rope <theta = 1.0e6>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    %b = moe.bias_add %a, %bo : tensor<?x64xf32>, tensor<64xf32>
    moe.yield %b : tensor<?x64xf32>
  }
  %g = moe.gather_rows %y, %rows : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %f = moe.rms_norm %g, %norm epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
  %l = moe.lm_head %f, %emb : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %i = moe.argmax %l : tensor<?x96xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x96xf32>, tensor<?xi32>
}
