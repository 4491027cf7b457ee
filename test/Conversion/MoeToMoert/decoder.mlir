// RUN: moe-opt %s -split-input-file --convert-moe-to-moert="tokens=8 max-batch=2 max-seq=32" -verify-diagnostics | FileCheck %s

// The whole decoder: the KV cache is planned in the state after the weights
// (2 sequences x 32 positions x 2 heads x 16 x keys and values = 4096 f32),
// the embedding writes the residual stream the layers update in place, and
// attention lowers to projections, per-head q/k norm (rows of 16: tokens x
// heads), rope, the cache append and causal attention, then the output
// projection. Only the rows that sample (one per sequence: 2 at most) go
// through the final norm and the LM head, into the step's output views.
// CHECK-LABEL: func.func @decoder_step(
// CHECK-SAME: %[[CTX:[^:]*]]: !moert.context, %[[STATE:[^:]*]]: !moert.buffer<103040>, %{{[^:]*}}: !moert.stats, %[[S:[^:]*]]: i64, %[[R:[^:]*]]: i64, %[[IDS:[^:]*]]: !moert.view<i32, 8>, %[[SEQ:[^:]*]]: !moert.view<i32, 8>, %[[POS:[^:]*]]: !moert.view<i32, 8>, %[[ROWS:[^:]*]]: !moert.view<i32, 2>, %[[LOGITS:[^:]*]]: !moert.view<f32, 192>, %[[NEXT:[^:]*]]: !moert.view<i32, 2>)
// CHECK-SAME: moert.attention_tp = 1 : i64, moert.cache_bytes = 16384 : i64, moert.dtype = f32, moert.entry = "forward", moert.hidden = 64 : i64, moert.max_batch = 2 : i64, moert.max_seq = 32 : i64
// CHECK-SAME: moert.vocab = 96 : i64
// CHECK: %[[EMB:.*]] = moert.view %[[STATE]][0] : !moert.buffer<103040> -> !moert.view<f32, 6144>
// CHECK: %[[CACHE:.*]] = moert.view %[[STATE]][18592] : !moert.buffer<103040> -> !moert.view<f32, 4096>
// CHECK: %[[X:.*]] = moert.view %[[STATE]]
// CHECK: %[[VOCAB:.*]] = arith.constant 96 : i64
// CHECK: moert.embedding %[[CTX]], %[[IDS]], %[[EMB]] -> %[[X]] tokens %[[S]] vocab %[[VOCAB]] hidden 64
// CHECK: moert.layer
// CHECK: moert.rms_norm %[[CTX]], %[[X]], %{{.*}} -> %[[N:.*]] tokens %[[S]] hidden 64
// CHECK: moert.linear %[[CTX]], %[[N]], %{{.*}} -> %[[Q:.*]] tokens %[[S]] n 64 k 64
// CHECK: moert.linear %[[CTX]], %[[N]], %{{.*}} -> %[[K:.*]] tokens %[[S]] n 32 k 64
// CHECK: moert.linear %[[CTX]], %[[N]], %{{.*}} -> %[[V:.*]] tokens %[[S]] n 32 k 64
// CHECK: %[[QROWS:.*]] = arith.muli %[[S]], %{{.*}} : i64
// CHECK: moert.rms_norm %[[CTX]], %[[Q]], %{{.*}} -> %[[Q]] tokens %[[QROWS]] hidden 16
// CHECK: moert.rms_norm %[[CTX]], %[[K]], %{{.*}} -> %[[K]] tokens %{{.*}} hidden 16
// CHECK: moert.rope %[[CTX]], %[[Q]] positions %[[POS]] tokens %[[S]] heads 4 head_dim 16 <theta = 1.0e+06>
// CHECK: moert.rope %[[CTX]], %[[K]] positions %[[POS]] tokens %[[S]] heads 2 head_dim 16 <theta = 1.0e+06>
// CHECK: moert.kv_append %[[CTX]], %[[K]], %[[V]] -> %[[CACHE]] at %[[SEQ]], %[[POS]] tokens %[[S]] kv_heads 2 head_dim 16 max_batch 2 max_seq 32
// CHECK: moert.attention %[[CTX]], %[[Q]], %[[CACHE]] at %[[SEQ]], %[[POS]] -> %[[O:.*]] tokens %[[S]] heads 4 kv_heads 2 head_dim 16 max_batch 2 max_seq 32 scale 2.500000e-01
// CHECK: moert.linear %[[CTX]], %[[O]], %{{.*}} -> %[[A:.*]] tokens %[[S]] n 64 k 64
// CHECK: moert.add %[[CTX]], %[[X]], %[[A]] -> %[[X]]
// CHECK: moert.embedding %[[CTX]], %[[ROWS]], %[[X]] -> %[[G:.*]] tokens %[[R]] vocab %[[S]] hidden 64
// CHECK: moert.rms_norm %[[CTX]], %[[G]], %{{.*}} -> %[[F:.*]] tokens %[[R]] hidden 64
// CHECK: moert.linear %[[CTX]], %[[F]], %[[EMB]] -> %[[LOGITS]] tokens %[[R]] n 96 k 64
// CHECK: moert.argmax %[[CTX]], %[[LOGITS]] -> %[[NEXT]] tokens %[[R]] vocab 96
func.func @decoder(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.kv_cache<2, 16, f32>,
    %emb: tensor<96x64xf32> {moe.weight = "model.embed_tokens.weight"},
    %ln: tensor<64xf32> {moe.weight = "model.layers.0.input_layernorm.weight"},
    %wq: tensor<64x64xf32> {moe.weight = "q"}, %wk: tensor<32x64xf32> {moe.weight = "k"},
    %wv: tensor<32x64xf32> {moe.weight = "v"}, %wo: tensor<64x64xf32> {moe.weight = "o"},
    %qn: tensor<16xf32> {moe.weight = "qn"}, %kn: tensor<16xf32> {moe.weight = "kn"},
    %norm: tensor<64xf32> {moe.weight = "model.norm.weight"})
    -> (tensor<?x96xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %n = moe.rms_norm %h, %ln epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
    %a = moe.attention %n positions %pos sequences %seq cache %cache : !moe.kv_cache<2, 16, f32>
        q %wq k %wk v %wv o %wo qk_norm(%qn, %kn : tensor<16xf32>, tensor<16xf32>) epsilon 1.0e-6
        heads 4 kv_heads 2 head_dim 16 rope <theta = 1.0e6>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  %g = moe.gather_rows %y, %rows : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %f = moe.rms_norm %g, %norm epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
  %l = moe.lm_head %f, %emb : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %i = moe.argmax %l : tensor<?x96xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x96xf32>, tensor<?xi32>
}

// -----

// A plan that splits attention needs the all-reduce of its partial outputs
// (moe-assign-parallelism attention-tp inserts it).
func.func @tp_attention(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32> {moe.weight = "w"})
    -> (tensor<?x64xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %w : tensor<?xi32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    // expected-error @below {{convert-moe-to-moert lowers data-parallel attention, or tensor-parallel attention whose output a shard.all_reduce sums; this layer's plan is #moe.plan<dp = 1, ep = 1, tp = 2>}}
    %a = moe.attention %h positions %pos sequences %seq cache %cache : !moe.kv_cache<4, 16, f32>
        q %w k %w v %w o %w heads 4 kv_heads 4 head_dim 16 rope <>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  } {moe.plan = #moe.plan<dp = 1, ep = 1, tp = 2>}
  %l = moe.lm_head %y, %w : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %i = moe.argmax %l : tensor<?x64xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x64xf32>, tensor<?xi32>
}

// -----

// gpt-oss's attention: the sinks weight and the layer's window go to
// moert.attention; the o_proj bias is a bias_add after the op.
// CHECK-LABEL: func.func @sinks_step(
// CHECK: moert.kv_append
// CHECK: moert.attention %{{.*}}, %{{.*}}, %{{.*}} at %{{.*}}, %{{.*}} sinks %{{.*}} -> %[[O:.*]] tokens %{{.*}} heads 4 kv_heads 2 head_dim 16 max_batch 2 max_seq 32 scale 2.500000e-01 window 8 : {{.*}}, !moert.view<f32, 4> -> !moert.view<f32, 512>
// CHECK: moert.linear %{{.*}}, %[[O]], %{{.*}} -> %[[A:.*]] tokens %{{.*}} n 64 k 64
// CHECK: moert.bias_add %{{.*}}, %[[A]], %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64
func.func @sinks(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.kv_cache<2, 16, f32>,
    %emb: tensor<96x64xf32> {moe.weight = "model.embed_tokens.weight"},
    %wq: tensor<64x64xf32> {moe.weight = "q"}, %wk: tensor<32x64xf32> {moe.weight = "k"},
    %wv: tensor<32x64xf32> {moe.weight = "v"}, %wo: tensor<64x64xf32> {moe.weight = "o"},
    %bo: tensor<64xf32> {moe.weight = "o_bias"}, %sinks: tensor<4xf32> {moe.weight = "sinks"})
    -> (tensor<?x96xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %a = moe.attention %h positions %pos sequences %seq cache %cache : !moe.kv_cache<2, 16, f32>
        q %wq k %wk v %wv o %wo sinks %sinks : tensor<4xf32>
        heads 4 kv_heads 2 head_dim 16 sliding_window 8 rope <>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    %b = moe.bias_add %a, %bo : tensor<?x64xf32>, tensor<64xf32>
    moe.yield %b : tensor<?x64xf32>
  }
  %l = moe.lm_head %y, %emb : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %i = moe.argmax %l : tensor<?x96xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x96xf32>, tensor<?xi32>
}

// -----

// DBRX's clip_qkv: q, k and v (each tokens x its width) clamped in place
// right after their projections, before the rope.
// CHECK-LABEL: func.func @clip_step(
// CHECK: moert.linear %{{.*}} -> %[[Q:.*]] tokens %{{.*}} n 64 k 64
// CHECK: moert.linear %{{.*}} -> %[[K:.*]] tokens %{{.*}} n 32 k 64
// CHECK: moert.linear %{{.*}} -> %[[V:.*]] tokens %{{.*}} n 32 k 64
// CHECK: %[[QN:.*]] = arith.muli %{{.*}}, %c64
// CHECK: moert.clamp %{{.*}}, %[[Q]] -> %[[Q]] count %[[QN]] limit 1.500000e+00
// CHECK: %[[KN:.*]] = arith.muli %{{.*}}, %c32
// CHECK: moert.clamp %{{.*}}, %[[K]] -> %[[K]] count %[[KN]] limit 1.500000e+00
// CHECK: moert.clamp %{{.*}}, %[[V]] -> %[[V]] count %{{.*}} limit 1.500000e+00
// CHECK: moert.rope
func.func @clip(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.kv_cache<2, 16, f32>,
    %emb: tensor<96x64xf32> {moe.weight = "transformer.wte.weight"},
    %wq: tensor<64x64xf32> {moe.weight = "qkv", moe.fused_view = #moe.fused_view<shape = [128, 64], offset = 0, expert_stride = 0, strides = [64, 1]>},
    %wk: tensor<32x64xf32> {moe.weight = "qkv", moe.fused_view = #moe.fused_view<shape = [128, 64], offset = 4096, expert_stride = 0, strides = [64, 1]>},
    %wv: tensor<32x64xf32> {moe.weight = "qkv", moe.fused_view = #moe.fused_view<shape = [128, 64], offset = 6144, expert_stride = 0, strides = [64, 1]>},
    %wo: tensor<64x64xf32> {moe.weight = "o"})
    -> (tensor<?x96xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %a = moe.attention %h positions %pos sequences %seq cache %cache : !moe.kv_cache<2, 16, f32>
        q %wq k %wk v %wv o %wo heads 4 kv_heads 2 head_dim 16 clip_qkv 1.5 rope <>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  %l = moe.lm_head %y, %emb : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %i = moe.argmax %l : tensor<?x96xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x96xf32>, tensor<?xi32>
}
