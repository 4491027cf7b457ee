// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier rule of the decoder ops.

func.func @f(%ids: tensor<?xi32>, %t: tensor<512x64xf32>) {
  // expected-error @below {{result must have shape [?, 64], got [?, 32]}}
  %x = moe.embedding %ids, %t : tensor<?xi32>, tensor<512x64xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @f(%ids: tensor<?xi32>, %t: tensor<512x64xf32>) {
  // expected-error @below {{result must have element type 'f32', got 'bf16'}}
  %x = moe.embedding %ids, %t : tensor<?xi32>, tensor<512x64xf32> -> tensor<?x64xbf16>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<32xf32>) {
  // expected-error @below {{weight must have shape [64], got [32]}}
  %n = moe.rms_norm %x, %w epsilon 1.0e-6 : tensor<?x64xf32>, tensor<32xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<64xf32>) {
  // expected-error @below {{epsilon must be finite and >= 0, got -1}}
  %n = moe.rms_norm %x, %w epsilon -1.0 : tensor<?x64xf32>, tensor<64xf32>
  return
}

// -----

// expected-error @below {{kv_cache needs kv_heads and head_dim >= 1, got 0 and 16}}
func.func @f(%c: !moe.kv_cache<0, 16, f32>) {
  return
}

// -----

// expected-error @below {{kv_cache element type must be f32, f16 or bf16, got 'i32'}}
func.func @f(%c: !moe.kv_cache<2, 16, i32>) {
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>) {
  // expected-error @below {{heads (3) must be a multiple of kv_heads (2)}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w heads 3 kv_heads 2 head_dim 16 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>) {
  // expected-error @below {{cache holds 4 heads of 16 but the op has kv_heads 2 and head_dim 16}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<4, 16, f32>
      q %w k %kv v %kv o %w heads 4 kv_heads 2 head_dim 16 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<16x64xf32>) {
  // expected-error @below {{k weight must have shape [32, 64], got [16, 64]}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w heads 4 kv_heads 2 head_dim 16 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<16x64xf32>, tensor<16x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>, %qn: tensor<16xf32>, %kn: tensor<32xf32>) {
  // expected-error @below {{k norm must have shape [16], got [32]}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w qk_norm(%qn, %kn : tensor<16xf32>, tensor<32xf32>) epsilon 1.0e-6
      heads 4 kv_heads 2 head_dim 16 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<2, 15, f32>,
    %w: tensor<60x64xf32>, %kv: tensor<30x64xf32>, %wo: tensor<64x60xf32>) {
  // expected-error @below {{rotary embedding pairs dimensions: head_dim 15 must be even}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<2, 15, f32>
      q %w k %kv v %kv o %wo heads 4 kv_heads 2 head_dim 15 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<60x64xf32>, tensor<30x64xf32>, tensor<30x64xf32>, tensor<64x60xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>) {
  // expected-error @+2 {{llama3 rope needs original_max_position >= 1 and high_freq_factor > low_freq_factor > 0}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w heads 4 kv_heads 2 head_dim 16 rope <type = llama3, factor = 8.0>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<512x32xf32>) {
  // expected-error @below {{weight must have shape [512, 64], got [512, 32]}}
  %l = moe.lm_head %x, %w : tensor<?x64xf32>, tensor<512x32xf32> -> tensor<?x512xf32>
  return
}

// -----

func.func @f(%l: tensor<4x512xf32>) {
  // expected-error @below {{result must have shape [4], got [3]}}
  %i = moe.argmax %l : tensor<4x512xf32> -> tensor<3xi32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %rows: tensor<4xi32>) {
  // expected-error @below {{result must have shape [4, 64], got [3, 64]}}
  %g = moe.gather_rows %x, %rows : tensor<?x64xf32>, tensor<4xi32> -> tensor<3x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>, %sinks: tensor<2xf32>) {
  // expected-error @below {{sinks}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w sinks %sinks : tensor<2xf32> heads 4 kv_heads 4 head_dim 16 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>, %sinks: tensor<4xbf16>) {
  // expected-error @below {{sinks}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w sinks %sinks : tensor<4xbf16> heads 4 kv_heads 4 head_dim 16 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>) {
  // expected-error @below {{sliding_window must be >= 0 (0: none), got -1}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w heads 4 kv_heads 4 head_dim 16 sliding_window -1 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>) {
  // expected-error @below {{scale must be finite and > 0, got 0}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w heads 4 kv_heads 4 head_dim 16 scale 0.0 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>) {
  // expected-error @below {{factor must be finite, got INF}}
  %s = moe.scale %x factor 0x7FF0000000000000 : tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<64xf32>) {
  // expected-error @below {{input}}
  %s = moe.scale %x factor 2.0 : tensor<64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>) {
  // expected-error @below {{clip_qkv must be finite and > 0, got -1}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w heads 4 kv_heads 4 head_dim 16 clip_qkv -1.0 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// longrope holds one factor per dimension pair of the head.
func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>) {
  // expected-error @below {{longrope holds 4 factors per list but its 16 rotated dims have 8 pairs}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w heads 4 kv_heads 2 head_dim 16
      rope <type = longrope, original_max_position = 16, short_factor = [1.0, 1.0, 1.0, 1.0], long_factor = [1.0, 2.0, 3.0, 4.0]>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// ... of the rotated dims only, when part of the head rotates.
func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>) {
  // expected-error @below {{longrope holds 8 factors per list but its 8 rotated dims have 4 pairs}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w heads 4 kv_heads 2 head_dim 16
      rope <type = longrope, original_max_position = 16, short_factor = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], long_factor = [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0], rotary_dim = 8>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// A partial rotary embedding rotates at most the whole head.
func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<2, 16, f32>,
    %w: tensor<64x64xf32>, %kv: tensor<32x64xf32>) {
  // expected-error @below {{rope rotary_dim 18 exceeds head_dim 16}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<2, 16, f32>
      q %w k %kv v %kv o %w heads 4 kv_heads 2 head_dim 16 rope <rotary_dim = 18>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %c: !moe.kv_cache<4, 16, f32>,
    %w: tensor<64x64xf32>) {
  // expected-error @below {{qk_norm_after_rope needs a q/k norm}}
  %a = moe.attention %x positions %p sequences %p cache %c : !moe.kv_cache<4, 16, f32>
      q %w k %w v %w o %w qk_norm_after_rope heads 4 kv_heads 4 head_dim 16 rope <>
      : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

// expected-error @below {{rope rotary_dim must be even and >= 0 (0: the whole head), got 7}}
func.func @f() attributes {r = #moe.rope<rotary_dim = 7>} {
  return
}

// -----

// expected-error @below {{longrope needs original_max_position >= 1 and short_factor, long_factor of one length in [1, 256]}}
func.func @f() attributes {r = #moe.rope<type = longrope, original_max_position = 16, short_factor = [1.0, 1.0], long_factor = [1.0]>} {
  return
}

// -----

// expected-error @below {{longrope factors and mscales must be finite and > 0}}
func.func @f() attributes {r = #moe.rope<type = longrope, original_max_position = 16, short_factor = [1.0, 0.0], long_factor = [1.0, 1.0]>} {
  return
}

// -----

// expected-error @below {{short_factor and long_factor belong to longrope only}}
func.func @f() attributes {r = #moe.rope<type = yarn, original_max_position = 16, short_factor = [1.0]>} {
  return
}
