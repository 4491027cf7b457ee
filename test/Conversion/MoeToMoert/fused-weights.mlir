// RUN: moe-opt %s --convert-moe-to-moert="tokens=16" --canonicalize --cse | FileCheck %s
// RUN: moe-opt %s --moe-fuse-kernels --convert-moe-to-moert="tokens=16" --canonicalize --cse | FileCheck %s --check-prefix=FUSED

// Weights that are views of fused tensors (moe.fused_view: Granite's
// input_linear [E, 2F, H] holds gate then up rows, output_linear is
// [E, H, F]) load with moert.load_fused_weight, straight from the file: EP 4
// over 8 experts, each rank its 2 experts at the run-time expert offset.
// CHECK-LABEL: func.func @granite_init(
// CHECK: moert.load_weight {{.*}} "l0.router.layer" shape [8, 64]
// CHECK: %[[OFF:.*]] = arith.muli %{{.*}}, %{{.*}} : i64
// CHECK: moert.load_fused_weight {{.*}} "l0.input_linear" experts [0, 2) + %[[OFF]] fused [8, 256, 64] offset 0 expert_stride 16384 strides [64, 1] shape [128, 64] begin [0, 0] end [128, 64] + (%{{.*}}, %{{.*}}) -> %{{.*}} : !moert.view<f32, 16384>
// CHECK: moert.load_fused_weight {{.*}} "l0.input_linear" experts [0, 2) + %[[OFF]] fused [8, 256, 64] offset 8192 expert_stride 16384 strides [64, 1] shape [128, 64] {{.*}} -> %{{.*}} : !moert.view<f32, 16384>
// CHECK: moert.load_fused_weight {{.*}} "l0.output_linear" experts [0, 2) + %[[OFF]] fused [8, 64, 128] offset 0 expert_stride 8192 strides [128, 1] shape [64, 128] {{.*}} -> %{{.*}} : !moert.view<f32, 16384>
// The shared MLP's gate and up: expert 0 of 1.
// CHECK: moert.load_fused_weight {{.*}} "l0.shared_mlp.input_linear" experts [0, 1) fused [64, 64] offset 0 expert_stride 0 strides [64, 1] shape [32, 64] begin [0, 0] end [0, 0] -> %{{.*}} : !moert.view<f32, 2048>
// CHECK: moert.load_fused_weight {{.*}} "l0.shared_mlp.input_linear" experts [0, 1) fused [64, 64] offset 2048 expert_stride 0 strides [64, 1] shape [32, 64]
// CHECK: moert.load_weight {{.*}} "l0.shared_mlp.output_linear" shape [64, 32]
// Fused kernels: gate and up of the rank's experts land packed in one
// [2, 256, 64] buffer (up at 128 * 64, experts 256 * 64 apart), read from
// the one fused tensor.
// FUSED-LABEL: func.func @granite_init(
// FUSED: %[[OFF:.*]] = arith.muli %{{.*}}, %{{.*}} : i64
// FUSED: moert.load_fused_weight {{.*}} "l0.input_linear" experts [0, 2) + %[[OFF]] fused [8, 256, 64] offset 0 expert_stride 16384 strides [64, 1] shape [128, 64] {{.*}} -> %{{.*}} stride 16384 : !moert.view<f32, 32768>
// FUSED: moert.load_fused_weight {{.*}} "l0.input_linear" experts [0, 2) + %[[OFF]] fused [8, 256, 64] offset 8192 expert_stride 16384 strides [64, 1] shape [128, 64] {{.*}} -> %{{.*}} stride 16384 : !moert.view<f32, 24576>
// FUSED-LABEL: func.func @granite_step(
// FUSED: moert.fused_experts
module {
func.func @granite(%x: tensor<?x64xf32>,
    %wg: tensor<8x64xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "l0.router.layer"},
    %w1: tensor<2x128x64xf32> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "l0.input_linear",
      moe.fused_view = #moe.fused_view<shape = [8, 256, 64], offset = 0, expert_stride = 16384, strides = [64, 1]>},
    %w3: tensor<2x128x64xf32> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "l0.input_linear",
      moe.fused_view = #moe.fused_view<shape = [8, 256, 64], offset = 8192, expert_stride = 16384, strides = [64, 1]>},
    %w2: tensor<2x64x128xf32> {moe.shard = #moe.shard<[ep, none, tp]>, moe.weight = "l0.output_linear",
      moe.fused_view = #moe.fused_view<shape = [8, 64, 128], offset = 0, expert_stride = 8192, strides = [128, 1]>},
    %sg: tensor<32x64xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "l0.shared_mlp.input_linear",
      moe.fused_view = #moe.fused_view<shape = [64, 64], offset = 0, expert_stride = 0, strides = [64, 1]>},
    %su: tensor<32x64xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "l0.shared_mlp.input_linear",
      moe.fused_view = #moe.fused_view<shape = [64, 64], offset = 2048, expert_stride = 0, strides = [64, 1]>},
    %sd: tensor<64x32xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "l0.shared_mlp.output_linear"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %l = moe.router %h, %wg : tensor<?x64xf32>, tensor<8x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    %sc = moe.sync_capacity %cap groups [[0, 1, 2, 3]]
    %b = moe.dispatch %h, %ids, %s, %sc : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<8x?x64xf32>
    %t = moe.all_to_all to_experts flat %b groups [[0, 1, 2, 3]] : tensor<8x?x64xf32> -> tensor<2x?x64xf32>
    %e = moe.experts silu %t gate %w1 up %w3 down %w2 : (tensor<2x?x64xf32>, tensor<2x128x64xf32>, tensor<2x128x64xf32>, tensor<2x64x128xf32>) -> tensor<2x?x64xf32>
    %f = moe.all_to_all from_experts flat %e groups [[0, 1, 2, 3]] : tensor<2x?x64xf32> -> tensor<8x?x64xf32>
    %o = moe.combine %f, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %sh = moe.dense_ffn silu %h gate %sg up %su down %sd : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
    %r = moe.shared_add %o, %sh : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  } {moe.plan = #moe.plan<dp = 1, ep = 4, tp = 1>}
  return %y : tensor<?x64xf32>
}
}
