// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4" | FileCheck %s
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2" | FileCheck %s --check-prefix=TP
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=1x3 attention-tp=3" 2>&1 | FileCheck %s --check-prefix=HEADS
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 report=table" -o /dev/null | FileCheck %s --check-prefix=REPORT
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2" --convert-moe-to-moert="tokens=8 max-batch=2 max-seq=32" | FileCheck %s --check-prefix=STEP

// DeepSeek's multi-head latent attention, data parallel: every rank its own
// sequences, latent cache and the whole weights.
// CHECK-LABEL: func.func @decoder
// CHECK-SAME: !moe.latent_cache<16, 8, f32>
// CHECK-NOT: shard.all_reduce
// CHECK: moe.latent_attention {{.*}} heads 4 nope_dim 8 v_dim 16
// CHECK: {moe.plan = #moe.plan<dp = 4, ep = 1, tp = 1>}

// Tensor parallel (attention-tp=2): the heads split, q_b and kv_b by rows,
// o by columns; q_a, kv_a, their norms and the latent cache stay whole (the
// latent is shared by every head); a shard.all_reduce sums the outputs.
// TP: shard.grid @grid_dp2_ep1_tp2(shape = 2x1x2)
// TP-LABEL: func.func @decoder
// TP-SAME: !moe.latent_cache<16, 8, f32>
// TP-SAME: tensor<24x64xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "q_a"}
// TP-SAME: tensor<24xf32> {moe.shard = #moe.shard<[none]>, moe.weight = "q_a_norm"}
// TP-SAME: tensor<32x24xf32> {moe.shard = #moe.shard<[tp, none]>, moe.weight = "q_b"}
// TP-SAME: tensor<24x64xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "kv_a"}
// TP-SAME: tensor<16xf32> {moe.shard = #moe.shard<[none]>, moe.weight = "kv_a_norm"}
// TP-SAME: tensor<48x16xf32> {moe.shard = #moe.shard<[tp, none]>, moe.weight = "kv_b"}
// TP-SAME: tensor<64x32xf32> {moe.shard = #moe.shard<[none, tp]>, moe.weight = "o"}
// TP: %[[A:.*]] = moe.latent_attention {{.*}} heads 2 nope_dim 8 v_dim 16
// TP-NEXT: %[[S:.*]] = shard.all_reduce %[[A]] on @grid_dp2_ep1_tp2 grid_axes = [2]
// TP-NEXT: moe.yield %[[S]]
// TP: {moe.plan = #moe.plan<dp = 2, ep = 1, tp = 2>}

// HEADS: error: 'moe.latent_attention' op has 4 heads, which do not split 3 ways (attention-tp)

// REPORT: 0 attn {{.*}} 1    4

// The step tells the runner its ranks come in attention groups of 2 (they
// must hold the same tokens), and sums the partial outputs over the group.
// STEP: func.func @decoder_step(
// STEP-SAME: moert.attention_tp = 2 : i64
// STEP: moert.latent_attention {{.*}} heads 2 nope_dim 8 v_dim 16
// STEP: moert.all_reduce

func.func @decoder(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.latent_cache<16, 8, f32>,
    %emb: tensor<96x64xf32> {moe.weight = "model.embed_tokens.weight"},
    %wqa: tensor<24x64xf32> {moe.weight = "q_a"}, %nqa: tensor<24xf32> {moe.weight = "q_a_norm"},
    %wq: tensor<64x24xf32> {moe.weight = "q_b"}, %wkva: tensor<24x64xf32> {moe.weight = "kv_a"},
    %nkv: tensor<16xf32> {moe.weight = "kv_a_norm"}, %wkvb: tensor<96x16xf32> {moe.weight = "kv_b"},
    %wo: tensor<64x64xf32> {moe.weight = "o"},
    %norm: tensor<64xf32> {moe.weight = "model.norm.weight"})
    -> (tensor<?x96xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %a = moe.latent_attention %h positions %pos sequences %seq cache %cache
        : !moe.latent_cache<16, 8, f32> q_a %wqa norm %nqa : tensor<24x64xf32>, tensor<24xf32>
        q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
        scale 0.25 epsilon 1.0e-6 rope <theta = 1.0e4>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x24xf32>, tensor<24x64xf32>,
          tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  %g = moe.gather_rows %y, %rows : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %f = moe.rms_norm %g, %norm epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
  %l = moe.lm_head %f, %emb : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %i = moe.argmax %l : tensor<?x96xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x96xf32>, tensor<?xi32>
}
