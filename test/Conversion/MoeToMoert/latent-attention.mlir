// RUN: moe-opt %s -split-input-file --convert-moe-to-moert="tokens=8 max-batch=2 max-seq=32" -verify-diagnostics | FileCheck %s

// DeepSeek's multi-head latent attention: the latent cache is planned in
// the state after the weights (2 sequences x 32 positions x (16 + 8) f32 =
// 6144 bytes, not per-head keys and values), and the op lowers to the
// low-rank q (q_a, its RMSNorm, q_b), the kv_a projection, the latent
// append (norm, rope on k_pe, store) and the absorbed attention over the
// cache, then the o projection.
// CHECK-LABEL: func.func @decoder_step(
// CHECK-SAME: %[[CTX:[^:]*]]: !moert.context, %[[STATE:[^:]*]]: !moert.buffer<81856>, %{{[^:]*}}: !moert.stats, %[[S:[^:]*]]: i64, %{{[^:]*}}: i64, %{{[^:]*}}: !moert.view<i32, 8>, %[[SEQ:[^:]*]]: !moert.view<i32, 8>, %[[POS:[^:]*]]: !moert.view<i32, 8>
// CHECK-SAME: moert.cache_bytes = 6144 : i64
// CHECK: %[[QA:.*]] = moert.view %[[STATE]][6144] : !moert.buffer<81856> -> !moert.view<f32, 1536>
// CHECK: %[[QAN:.*]] = moert.view %[[STATE]][7680] : !moert.buffer<81856> -> !moert.view<f32, 24>
// CHECK: %[[QB:.*]] = moert.view %[[STATE]][7712] : !moert.buffer<81856> -> !moert.view<f32, 1536>
// CHECK: %[[KVA:.*]] = moert.view %[[STATE]][9248] : !moert.buffer<81856> -> !moert.view<f32, 1536>
// CHECK: %[[KVAN:.*]] = moert.view %[[STATE]][10784] : !moert.buffer<81856> -> !moert.view<f32, 16>
// CHECK: %[[KVB:.*]] = moert.view %[[STATE]][10800] : !moert.buffer<81856> -> !moert.view<f32, 1536>
// CHECK: %[[WO:.*]] = moert.view %[[STATE]][12336] : !moert.buffer<81856> -> !moert.view<f32, 4096>
// CHECK: %[[CACHE:.*]] = moert.view %[[STATE]][16496] : !moert.buffer<81856> -> !moert.view<f32, 1536>
// CHECK: %[[X:.*]] = moert.view %[[STATE]][19440]
// CHECK: moert.layer
// CHECK: moert.linear %[[CTX]], %[[X]], %[[QA]] -> %[[LOW:.*]] tokens %[[S]] n 24 k 64
// CHECK: moert.rms_norm %[[CTX]], %[[LOW]], %[[QAN]] -> %[[LOW]] tokens %[[S]] hidden 24
// CHECK: moert.linear %[[CTX]], %[[LOW]], %[[QB]] -> %[[Q:.*]] tokens %[[S]] n 64 k 24
// CHECK: moert.linear %[[CTX]], %[[X]], %[[KVA]] -> %[[KV:.*]] tokens %[[S]] n 24 k 64
// CHECK: moert.latent_append %[[CTX]], %[[KV]], %[[KVAN]] -> %[[CACHE]] at %[[SEQ]], %[[POS]] tokens %[[S]] rank 16 rope_dim 8 max_batch 2 max_seq 32 epsilon 9.99999997E-7 <>
// CHECK: moert.latent_attention %[[CTX]], %[[Q]], %[[KVB]], %[[CACHE]] at %[[SEQ]], %[[POS]] -> %[[O:.*]] tokens %[[S]] heads 4 nope_dim 8 v_dim 16 rank 16 rope_dim 8 max_batch 2 max_seq 32 scale 2.500000e-01 <>
// CHECK: moert.linear %[[CTX]], %[[O]], %[[WO]] -> %[[A:.*]] tokens %[[S]] n 64 k 64
// CHECK: moert.add %[[CTX]], %[[X]], %[[A]] -> %[[X]]
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

// -----

// A tensor-parallel plan needs the shard.all_reduce of the partial outputs
// (moe-assign-parallelism inserts it).
func.func @tp(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.latent_cache<16, 8, f32>,
    %emb: tensor<96x64xf32> {moe.weight = "model.embed_tokens.weight"},
    %wq: tensor<64x64xf32> {moe.weight = "q"}, %wkva: tensor<24x64xf32> {moe.weight = "kv_a"},
    %nkv: tensor<16xf32> {moe.weight = "kv_a_norm"}, %wkvb: tensor<96x16xf32> {moe.weight = "kv_b"},
    %wo: tensor<64x64xf32> {moe.weight = "o"},
    %norm: tensor<64xf32> {moe.weight = "model.norm.weight"})
    -> (tensor<?x96xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    // expected-error @below {{convert-moe-to-moert lowers data-parallel latent attention, or tensor-parallel latent attention whose output a shard.all_reduce sums; this layer's plan is #moe.plan<dp = 1, ep = 1, tp = 2>}}
    %a = moe.latent_attention %h positions %pos sequences %seq cache %cache
        : !moe.latent_cache<16, 8, f32> q %wq kv_a %wkva norm %nkv kv_b %wkvb
        o %wo heads 4 nope_dim 8 v_dim 16 scale 0.25 epsilon 1.0e-6 rope <>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<24x64xf32>,
          tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  } {moe.plan = #moe.plan<dp = 1, ep = 1, tp = 2>}
  %g = moe.gather_rows %y, %rows : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %f = moe.rms_norm %g, %norm epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
  %l = moe.lm_head %f, %emb : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %i = moe.argmax %l : tensor<?x96xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x96xf32>, tensor<?xi32>
}
