// RUN: moe-opt %s -split-input-file -verify-diagnostics

// One case per verifier rule of the PR-MoE GPT's runtime calls.

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 32>) {
  // expected-error @below {{weight}}
  moert.layer_norm %ctx, %x, %w -> %x tokens %s hidden 64 epsilon 1.0e-5 : !moert.view<f32, 1024>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 64>, %b: !moert.view<f32, 32>) {
  // expected-error @below {{bias}}
  moert.layer_norm %ctx, %x, %w bias %b -> %x tokens %s hidden 64 epsilon 1.0e-5 : !moert.view<f32, 1024>, !moert.view<f32, 64>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %w: !moert.view<f32, 64>) {
  // expected-error @below {{epsilon must be finite and >= 0, got -1}}
  moert.layer_norm %ctx, %x, %w -> %x tokens %s hidden 64 epsilon -1.0 : !moert.view<f32, 1024>, !moert.view<f32, 64> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %s: i64, %x: !moert.view<f32, 1024>, %b: !moert.view<f32, 32>) {
  // expected-error @below {{bias}}
  moert.bias_add %ctx, %x, %b -> %x tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 4096>) {
  // expected-error @below {{the view reaches element 12351 of a fused tensor of 12288}}
  moert.load_fused_weight %ctx, %w "qkv" experts [0, 1) fused [192, 64] offset 2112 expert_stride 0 strides [3072, 64, 1] shape [4, 16, 64] begin [0, 0, 0] end [0, 0, 0] -> %d : !moert.view<f32, 4096>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 4096>) {
  // expected-error @below {{fused strides must have one entry per dimension of shape (3), got 2}}
  moert.load_fused_weight %ctx, %w "qkv" experts [0, 1) fused [192, 64] offset 0 expert_stride 0 strides [3072, 64] shape [4, 16, 64] begin [0, 0, 0] end [0, 0, 0] -> %d : !moert.view<f32, 4096>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 4096>) {
  // expected-error @below {{must name the fused tensor, not a per-expert pattern}}
  moert.load_fused_weight %ctx, %w "e.{e}.qkv" experts [0, 1) fused [192, 64] offset 0 expert_stride 0 strides [3072, 64, 1] shape [4, 16, 64] begin [0, 0, 0] end [0, 0, 0] -> %d : !moert.view<f32, 4096>
  return
}

// -----

func.func @f(%ctx: !moert.context, %w: !moert.weights, %d: !moert.view<f32, 2048>) {
  // expected-error @below {{destination}}
  moert.load_fused_weight %ctx, %w "qkv" experts [0, 1) fused [192, 64] offset 0 expert_stride 0 strides [3072, 64, 1] shape [4, 16, 64] begin [0, 0, 0] end [0, 0, 0] -> %d : !moert.view<f32, 2048>
  return
}

// -----

func.func @f(%ctx: !moert.context, %n: i64, %x: !moert.view<f32, 1024>) {
  // expected-error @below {{limit must be finite and > 0, got 0}}
  moert.clamp %ctx, %x -> %x count %n limit 0.0 : !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %n: i64, %x: !moert.view<i32, 1024>) {
  // expected-error @below {{x must be a f32, f16 or bf16 view}}
  moert.clamp %ctx, %x -> %x count %n limit 1.0 : !moert.view<i32, 1024> -> !moert.view<i32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %n: i64, %x: !moert.view<f32, 1024>) {
  // expected-error @below {{factor must be finite, got INF}}
  moert.scale %ctx, %x -> %x count %n factor 0x7F800000 : !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  return
}

// -----

func.func @f(%ctx: !moert.context, %n: i64, %x: !moert.view<f32, 1024>, %i: !moert.view<i32, 1024>) {
  // expected-error @below {{out must be a f32, f16 or bf16 view}}
  moert.scale %ctx, %x -> %i count %n factor 2.0 : !moert.view<f32, 1024> -> !moert.view<i32, 1024>
  return
}
