// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4" | FileCheck %s
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2" 2>&1 | FileCheck %s --check-prefix=TP
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 report=table" -o /dev/null | FileCheck %s --check-prefix=REPORT

// DeepSeek's multi-head latent attention is planned data parallel: every
// rank its own sequences, latent cache and the whole weights. Tensor
// parallel latent attention is not implemented and is refused at the op.
// CHECK-LABEL: func.func @decoder
// CHECK-SAME: !moe.latent_cache<16, 8, f32>
// CHECK-NOT: shard.all_reduce
// CHECK: moe.latent_attention {{.*}} heads 4 nope_dim 8 v_dim 16
// CHECK: {moe.plan = #moe.plan<dp = 4, ep = 1, tp = 1>}

// TP: error: 'moe.latent_attention' op tensor-parallel latent attention (attention-tp 2) is not implemented: plan DeepSeek's multi-head latent attention data parallel (attention-tp=1)

// REPORT: 0 attn {{.*}} 1    4
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
