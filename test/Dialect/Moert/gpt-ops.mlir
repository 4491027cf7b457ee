// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --verify-roundtrip | FileCheck %s

// The PR-MoE GPT's runtime calls in their custom form.

// CHECK-LABEL: func.func @gpt
func.func @gpt(%ctx: !moert.context, %weights: !moert.weights, %s: i64,
    %x: !moert.view<bf16, 1024>, %w: !moert.view<bf16, 64>,
    %b: !moert.view<bf16, 64>, %wq: !moert.view<f32, 4096>,
    %half: !moert.view<f32, 2048>, %h0: i64, %z: i64) {
  // CHECK: moert.layer_norm %{{.*}}, %{{.*}}, %{{.*}} bias %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64 epsilon 9.99999974E-6
  moert.layer_norm %ctx, %x, %w bias %b -> %x tokens %s hidden 64 epsilon 1.0e-5 : !moert.view<bf16, 1024>, !moert.view<bf16, 64>, !moert.view<bf16, 64> -> !moert.view<bf16, 1024>
  // CHECK: moert.layer_norm %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64 epsilon
  moert.layer_norm %ctx, %x, %w -> %x tokens %s hidden 64 epsilon 1.0e-5 : !moert.view<bf16, 1024>, !moert.view<bf16, 64> -> !moert.view<bf16, 1024>
  // CHECK: moert.bias_add %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64
  moert.bias_add %ctx, %x, %b -> %x tokens %s hidden 64 : !moert.view<bf16, 1024>, !moert.view<bf16, 64> -> !moert.view<bf16, 1024>
  // CHECK: moert.load_fused_weight %{{.*}}, %{{.*}} "qkv.weight" experts [0, 1) fused [192, 64] offset 1024 expert_stride 0 strides [3072, 64, 1] shape [4, 16, 64] begin [0, 0, 0] end [0, 0, 0] -> %{{.*}} : !moert.view<f32, 4096>
  moert.load_fused_weight %ctx, %weights "qkv.weight" experts [0, 1) fused [192, 64] offset 1024 expert_stride 0 strides [3072, 64, 1] shape [4, 16, 64] begin [0, 0, 0] end [0, 0, 0] -> %wq : !moert.view<f32, 4096>
  // CHECK: moert.load_fused_weight {{.*}} fused [192, 64] offset 2048 {{.*}} end [2, 16, 64] + (%{{.*}}, %{{.*}}, %{{.*}})
  moert.load_fused_weight %ctx, %weights "qkv.weight" experts [0, 1) fused [192, 64] offset 2048 expert_stride 0 strides [3072, 64, 1] shape [4, 16, 64] begin [0, 0, 0] end [2, 16, 64] + (%h0, %z, %z) -> %half : !moert.view<f32, 2048>
  return
}

// DBRX's clip_qkv on a projection's output, in place.
// CHECK-LABEL: func.func @clamp
// CHECK: moert.clamp %{{.*}}, %{{.*}} -> %{{.*}} count %{{.*}} limit 8.000000e+00 : !moert.view<bf16, 1024> -> !moert.view<bf16, 1024>
func.func @clamp(%ctx: !moert.context, %n: i64, %x: !moert.view<bf16, 1024>) {
  moert.clamp %ctx, %x -> %x count %n limit 8.0 : !moert.view<bf16, 1024> -> !moert.view<bf16, 1024>
  return
}

// Granite's multipliers: in place, and f32 logits into another view.
// CHECK-LABEL: func.func @scale
// CHECK: moert.scale %{{.*}}, %{{.*}} -> %{{.*}} count %{{.*}} factor 2.200000e-01 : !moert.view<bf16, 1024> -> !moert.view<bf16, 1024>
// CHECK: moert.scale %{{.*}}, %{{.*}} -> %{{.*}} count %{{.*}} factor -5.000000e-01 : !moert.view<f32, 512> -> !moert.view<f32, 512>
func.func @scale(%ctx: !moert.context, %n: i64, %x: !moert.view<bf16, 1024>,
    %l: !moert.view<f32, 512>, %m: !moert.view<f32, 512>) {
  moert.scale %ctx, %x -> %x count %n factor 0.22 : !moert.view<bf16, 1024> -> !moert.view<bf16, 1024>
  moert.scale %ctx, %l -> %m count %n factor -0.5 : !moert.view<f32, 512> -> !moert.view<f32, 512>
  return
}
