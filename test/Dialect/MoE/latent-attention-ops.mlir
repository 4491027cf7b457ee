// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --verify-roundtrip --mlir-print-op-generic | moe-opt | FileCheck %s

// DeepSeek's multi-head latent attention over a compressed (latent) cache:
// a plain q projection (V2-Lite) and a low-rank one (V3).

// CHECK-LABEL: func.func @plain_q
// CHECK-SAME: %[[CACHE:[^:]*]]: !moe.latent_cache<16, 8, f32>
func.func @plain_q(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %seq: tensor<?xi32>,
    %cache: !moe.latent_cache<16, 8, f32>, %wq: tensor<64x64xf32>,
    %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>, %wkvb: tensor<96x16xf32>,
    %wo: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // CHECK: moe.latent_attention %{{.*}} positions %{{.*}} sequences %{{.*}} cache %[[CACHE]] : <16, 8, f32> q %{{.*}} kv_a %{{.*}} norm %{{.*}} kv_b %{{.*}} o %{{.*}} heads 4 nope_dim 8 v_dim 16 scale 2.500000e-01 epsilon 9.9999999999999995E-7 rope <> : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %a = moe.latent_attention %x positions %pos sequences %seq cache %cache
      : !moe.latent_cache<16, 8, f32> q %wq kv_a %wkva norm %nkv kv_b %wkvb
      o %wo heads 4 nope_dim 8 v_dim 16 scale 0.25 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<24x64xf32>,
        tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %a : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @low_rank_q_yarn
// CHECK: moe.latent_attention {{.*}} : <16, 8, bf16> q_a %{{.*}} norm %{{.*}} : tensor<24x64xbf16>, tensor<24xbf16> q %{{.*}} kv_a {{.*}} heads 4 nope_dim 8 v_dim 16 scale {{.*}} rope <type = yarn, factor = 4.0, original_max_position = 32, attention_factor = 1.0173>
func.func @low_rank_q_yarn(%x: tensor<?x64xbf16>, %pos: tensor<?xi32>,
    %cache: !moe.latent_cache<16, 8, bf16>, %wqa: tensor<24x64xbf16>,
    %nqa: tensor<24xbf16>, %wqb: tensor<64x24xbf16>,
    %wkva: tensor<24x64xbf16>, %nkv: tensor<16xbf16>, %wkvb: tensor<96x16xbf16>,
    %wo: tensor<64x64xbf16>) -> tensor<?x64xbf16> {
  %a = moe.latent_attention %x positions %pos sequences %pos cache %cache
      : !moe.latent_cache<16, 8, bf16> q_a %wqa norm %nqa
      : tensor<24x64xbf16>, tensor<24xbf16> q %wqb kv_a %wkva norm %nkv
      kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16 scale 0.2883 epsilon 1.0e-6
      rope <type = yarn, factor = 4.0, original_max_position = 32,
            attention_factor = 1.0173>
      : tensor<?x64xbf16>, tensor<?xi32>, tensor<64x24xbf16>, tensor<24x64xbf16>,
        tensor<16xbf16>, tensor<96x16xbf16>, tensor<64x64xbf16> -> tensor<?x64xbf16>
  return %a : tensor<?x64xbf16>
}
