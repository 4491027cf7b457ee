// RUN: moe-opt %s --convert-moe-to-moert="tokens=8 max-batch=2 max-seq=32" --convert-moert-to-emitc | moe-translate --moe-to-cpp | FileCheck %s

// DeepSeek MLA's runtime calls in C, their arguments in the order of their
// declaration in runtime/moert.h: moert_latent_append(ctx, cfg, kv, norm,
// cache, sequences, positions, tokens, rank, rope_dim, max_batch, max_seq,
// epsilon) and moert_latent_attention(ctx, cfg, q, kv_b, cache, sequences,
// positions, out, tokens, heads, nope_dim, rope_dim, v_dim, rank, max_batch,
// max_seq, scale).

// CHECK-LABEL: moert_status_t moe_model_forward(
// CHECK-SAME: moert_context_t [[CTX:v[0-9]+]], moert_buffer_t {{v[0-9]+}}, moert_model_layer_stats_t* {{v[0-9]+}}, int64_t [[S:v[0-9]+]], int64_t {{v[0-9]+}}, moert_view_t {{v[0-9]+}}, moert_view_t [[SEQ:v[0-9]+]], moert_view_t [[POS:v[0-9]+]],
// CHECK: moert_status_t {{v[0-9]+}} = moert_linear([[CTX]], {{v[0-9]+}}, {{v[0-9]+}}, moert_absent_view(), [[Q:v[0-9]+]], [[S]], 64, 24);
// CHECK: moert_status_t {{v[0-9]+}} = moert_linear([[CTX]], {{v[0-9]+}}, {{v[0-9]+}}, moert_absent_view(), [[KV:v[0-9]+]], [[S]], 24, 64);
// CHECK: moert_rope_config_t [[CFG:v[0-9]+]];
// CHECK-NEXT: [[CFG]].type = MOERT_ROPE_DEFAULT;
// CHECK: moert_rope_config_t* [[PCFG:v[0-9]+]] = &[[CFG]];
// CHECK-NEXT: moert_status_t {{v[0-9]+}} = moert_latent_append([[CTX]], [[PCFG]], [[KV]], [[NORM:v[0-9]+]], [[CACHE:v[0-9]+]], [[SEQ]], [[POS]], [[S]], 16, 8, 2, 32, 9.99999997e-07f);
// CHECK: moert_rope_config_t* [[PCFG2:v[0-9]+]] = &{{v[0-9]+}};
// CHECK-NEXT: moert_status_t {{v[0-9]+}} = moert_latent_attention([[CTX]], [[PCFG2]], [[Q]], [[KVB:v[0-9]+]], [[CACHE]], [[SEQ]], [[POS]], [[O:v[0-9]+]], [[S]], 4, 8, 8, 16, 16, 2, 32, 2.50000000e-01f);
// CHECK-NEXT: if ({{v[0-9]+}} != MOERT_OK) return moert_model_fail({{v[0-9]+}}, {{v[0-9]+}}, "layer 0: moert_latent_attention");
// CHECK: moert_linear([[CTX]], [[O]], {{v[0-9]+}}, moert_absent_view(), {{v[0-9]+}}, [[S]], 64, 64);

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
