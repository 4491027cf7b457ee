// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier rule of moe.latent_attention and its cache type.

// expected-error @below {{latent_cache needs rank >= 1 and an even rope_dim >= 2, got 16 and 7}}
func.func @f(%c: !moe.latent_cache<16, 7, f32>) {
  return
}

// -----

// expected-error @below {{latent_cache element type must be f32, f16 or bf16, got 'i32'}}
func.func @f(%c: !moe.latent_cache<16, 8, i32>) {
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, f32>,
    %wq: tensor<48x64xf32>, %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>,
    %wkvb: tensor<96x16xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @below {{q weight must have shape [64, 64], got [48, 64]}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, f32>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
      scale 0.25 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<48x64xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, f32>,
    %wq: tensor<64x64xf32>, %wkva: tensor<16x64xf32>, %nkv: tensor<16xf32>,
    %wkvb: tensor<96x16xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @below {{kv_a weight must have shape [24, 64], got [16, 64]}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, f32>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
      scale 0.25 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<16x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, f32>,
    %wq: tensor<64x64xf32>, %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>,
    %wkvb: tensor<64x16xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @below {{kv_b weight must have shape [96, 16], got [64, 16]}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, f32>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
      scale 0.25 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<64x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, f32>,
    %wq: tensor<64x64xf32>, %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>,
    %wkvb: tensor<96x16xf32>, %wo: tensor<64x32xf32>) {
  // expected-error @below {{o weight must have shape [64, 64], got [64, 32]}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, f32>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
      scale 0.25 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, f32>,
    %wqa: tensor<24x64xf32>, %nqa: tensor<32xf32>, %wq: tensor<64x24xf32>,
    %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>, %wkvb: tensor<96x16xf32>,
    %wo: tensor<64x64xf32>) {
  // expected-error @below {{q_a norm must have shape [24], got [32]}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, f32>
      q_a %wqa norm %nqa : tensor<24x64xf32>, tensor<32xf32>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
      scale 0.25 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x24xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, f32>,
    %wq: tensor<64x64xf32>, %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>,
    %wkvb: tensor<96x16xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @below {{scale must be finite and > 0, got 0}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, f32>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
      scale 0.0 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, bf16>,
    %wq: tensor<64x64xf32>, %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>,
    %wkvb: tensor<96x16xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @below {{cache element type 'bf16' must be the input's, 'f32'}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, bf16>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
      scale 0.25 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, f32>,
    %wq: tensor<0x64xf32>, %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>,
    %wkvb: tensor<96x16xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @below {{heads, nope_dim and v_dim must be >= 1, got 4, 0 and 16}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, f32>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 0 v_dim 16
      scale 0.25 epsilon 1.0e-6 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<0x64xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %pos: tensor<?xi32>, %c: !moe.latent_cache<16, 8, f32>,
    %wq: tensor<64x64xf32>, %wkva: tensor<24x64xf32>, %nkv: tensor<16xf32>,
    %wkvb: tensor<96x16xf32>, %wo: tensor<64x64xf32>) {
  // expected-error @below {{latent attention takes no rope rotary_dim or interleaved: its rope_dim dims rotate, always in interleaved pairs}}
  %a = moe.latent_attention %x positions %pos sequences %pos cache %c : !moe.latent_cache<16, 8, f32>
      q %wq kv_a %wkva norm %nkv kv_b %wkvb o %wo heads 4 nope_dim 8 v_dim 16
      scale 0.25 epsilon 1.0e-6 rope <rotary_dim = 4>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<24x64xf32>, tensor<16xf32>, tensor<96x16xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}
