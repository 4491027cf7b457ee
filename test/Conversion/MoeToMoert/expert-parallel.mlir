// RUN: moe-opt %s --convert-moe-to-moert="tokens=16" --canonicalize --cse | FileCheck %s
// RUN: moe-opt %s --moe-fuse-kernels --convert-moe-to-moert="tokens=16" --canonicalize --cse | FileCheck %s --check-prefix=FUSED

// EP 4 over 8 experts: every rank loads experts [2r, 2r + 2) (the expert
// offset is rank / 1 % 4 * 2 at run time), syncs the capacity with MAX over
// its group, exchanges the dispatched rows and its per-expert counts (which
// become the rows of the G = 4 blocks of each local expert), runs its two
// experts on 4 x C rows, and sends the outputs back before combining.
// CHECK-LABEL: func.func @ep_init(
// CHECK: %[[RANK:.*]] = moert.rank
// CHECK: %[[E:.*]] = arith.remsi %[[RANK]], %{{.*}} : i64
// CHECK: %[[OFF:.*]] = arith.muli %[[E]], %{{.*}} : i64
// CHECK: moert.load_weight {{.*}} "l0.experts.{e}.w1" experts [0, 2) + %[[OFF]] shape [128, 64] begin [0, 0] end [128, 64] + (%{{.*}}, %{{.*}}) -> %{{.*}} : !moert.view<f32, 16384>
// Init keeps the EP group; the step looks it up (creating one is collective
// and cannot be captured in a CUDA graph).
// CHECK: moert.keep_group %{{.*}} {{\[}}[0, 1, 2, 3]] slot 0
// CHECK-NEXT: return
// CHECK-LABEL: func.func @ep_step(
// CHECK-NOT: moert.keep_group
// CHECK: moert.layer
// CHECK: %[[CAP:.*]] = moert.gate
// CHECK: %[[G:.*]] = moert.group %{{.*}} slot 0
// CHECK: %[[C:.*]] = moert.all_reduce_i64 %{{.*}}, %[[G]] max %[[CAP]]
// CHECK: moert.dispatch {{.*}} capacity %[[C]] hidden 64 top_k 2 experts 8
// CHECK: moert.all_to_all %{{.*}}, %[[G]] to_experts flat %{{.*}} -> %[[RECV:.*]] experts_local 2 capacity %[[C]] hidden 64 : !moert.view<f32, 8192> -> !moert.view<f32, 8192>
// CHECK: moert.all_to_all %{{.*}}, %[[G]] to_experts flat %{{.*}} -> %[[ROWS:.*]] experts_local 2 capacity %{{.*}} hidden 1 : !moert.view<i32, 8> -> !moert.view<i32, 8>
// CHECK: %[[GC:.*]] = arith.muli %[[C]], %{{.*}} : i64
// CHECK: moert.experts_linear %{{.*}}, %{{.*}} : !moert.view<f32, 16384> in %[[RECV]] : !moert.view<f32, 8192> -> %[[H:[^ ]*]] : !moert.view<f32, 16384> rows %[[ROWS]] : !moert.view<i32, 8> capacity %[[GC]] experts 2 blocks 4 n 128 k 64
// CHECK: moert.experts_linear {{.*}} in %[[RECV]] {{.*}} n 128 k 64
// CHECK: moert.activation %{{.*}}, silu %[[H]] -> %[[H]]
// CHECK: moert.multiply %{{.*}}, %[[H]], %{{.*}} -> %[[H]]
// CHECK: moert.experts_linear {{.*}} in %[[H]] {{.*}} rows %[[ROWS]] : !moert.view<i32, 8> capacity %[[GC]] experts 2 blocks 4 n 64 k 128
// CHECK: moert.all_to_all %{{.*}}, %[[G]] from_experts flat
// CHECK: moert.combine {{.*}} capacity %[[C]]
// CHECK: moert.add
// Fused, w1 and w3 of the rank's experts load into one packed [2, 256, 64]
// buffer at the same run-time expert offset (w3 at 128 * 64, experts
// 256 * 64 apart) and the FFN is one moert.fused_experts over the blocks.
// FUSED-LABEL: func.func @ep_init(
// FUSED: %[[OFF:.*]] = arith.muli %{{.*}}, %{{.*}} : i64
// FUSED: moert.load_weight {{.*}} "l0.experts.{e}.w1" experts [0, 2) + %[[OFF]] shape [128, 64] begin [0, 0] end [128, 64] + (%{{.*}}, %{{.*}}) -> %{{.*}} stride 16384 : !moert.view<f32, 32768>
// FUSED: moert.load_weight {{.*}} "l0.experts.{e}.w3" experts [0, 2) + %[[OFF]] shape [128, 64] begin [0, 0] end [128, 64] + (%{{.*}}, %{{.*}}) -> %{{.*}} stride 16384 : !moert.view<f32, 24576>
// FUSED-LABEL: func.func @ep_step(
// FUSED-NOT: moert.experts_linear
// FUSED: moert.fused_experts %{{.*}}, silu %{{.*}} : !moert.view<f32, 8192> gate_up %{{.*}} : !moert.view<f32, 32768> down %{{.*}} : !moert.view<f32, 16384> -> %{{.*}} : !moert.view<f32, 8192> rows %{{.*}} : !moert.view<i32, 8> capacity %{{.*}} experts 2 blocks 4 hidden 64 ffn 128{{$}}
module {
func.func @ep(%x: tensor<?x64xf32>,
    %wg: tensor<8x64xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "l0.gate"},
    %w1: tensor<2x128x64xf32> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "l0.experts.{e}.w1"},
    %w3: tensor<2x128x64xf32> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "l0.experts.{e}.w3"},
    %w2: tensor<2x64x128xf32> {moe.shard = #moe.shard<[ep, none, tp]>, moe.weight = "l0.experts.{e}.w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %l = moe.router %h, %wg : tensor<?x64xf32>, tensor<8x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    %sc = moe.sync_capacity %cap groups [[0, 1, 2, 3]]
    %b = moe.dispatch %h, %ids, %s, %sc : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<8x?x64xf32>
    %t = moe.all_to_all to_experts flat %b groups [[0, 1, 2, 3]] : tensor<8x?x64xf32> -> tensor<2x?x64xf32>
    %e = moe.experts silu %t gate %w1 up %w3 down %w2 : (tensor<2x?x64xf32>, tensor<2x128x64xf32>, tensor<2x128x64xf32>, tensor<2x64x128xf32>) -> tensor<2x?x64xf32>
    %f = moe.all_to_all from_experts flat %e groups [[0, 1, 2, 3]] : tensor<2x?x64xf32> -> tensor<8x?x64xf32>
    %o = moe.combine %f, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    moe.yield %o : tensor<?x64xf32>
  } {moe.plan = #moe.plan<dp = 1, ep = 4, tp = 1>}
  return %y : tensor<?x64xf32>
}
}
