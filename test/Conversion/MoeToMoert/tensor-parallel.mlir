// RUN: moe-opt %s --convert-moe-to-moert="tokens=8" --canonicalize --cse | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-moert="tokens=8" --canonicalize --cse --convert-moert-to-emitc | moe-translate --moe-to-cpp | FileCheck %s --check-prefix=CPP

// EP 2 x TP 2 on 4 ranks (rank = e * 2 + t), a PR-MoE layer with biases.
// Init: experts [2 * e, +2) sliced over F: fc1 rows and fc2 columns start at
// t * 8, the fc1 bias too; the fc2 biases load whole. The residual MLP is
// sliced the same way.
// CHECK-LABEL: func.func @forward_init(
// CHECK: %[[RANK:.*]] = moert.rank
// CHECK: %[[Q:.*]] = arith.divsi %[[RANK]], %[[C2:.*]] : i64
// CHECK: %[[E:.*]] = arith.remsi %[[Q]], %[[C2]] : i64
// CHECK: %[[EOFF:.*]] = arith.muli %[[E]], %[[C2]] : i64
// CHECK: %[[T:.*]] = arith.remsi %[[RANK]], %[[C2]] : i64
// CHECK: %[[FOFF:.*]] = arith.muli %[[T]], %[[C8:.*]] : i64
// CHECK: "l.0.experts.{e}.fc1.weight" experts [0, 2) + %[[EOFF]] shape [16, 8] begin [0, 0] end [8, 8] + (%[[FOFF]], %{{.*}})
// CHECK: "l.0.experts.{e}.fc1.bias" experts [0, 2) + %[[EOFF]] shape [16] begin [0] end [8] + (%[[FOFF]])
// CHECK: "l.0.experts.{e}.fc2.weight" experts [0, 2) + %[[EOFF]] shape [8, 16] begin [0, 0] end [8, 8] + (%{{.*}}, %[[FOFF]])
// CHECK: "l.0.experts.{e}.fc2.bias" experts [0, 2) + %[[EOFF]] shape [8] begin [0] end [8] + (%{{.*}})
// CHECK: "l.0.fc1.weight" shape [16, 8] begin [0, 0] end [8, 8] + (%[[FOFF]], %{{.*}})
// CHECK: "l.0.fc2.weight" shape [8, 16] begin [0, 0] end [8, 8] + (%{{.*}}, %[[FOFF]])
// CHECK: "l.0.fc2.bias" shape [8] begin [0] end [0] ->
// The step's groups, kept in the order of first use.
// CHECK: moert.keep_group %{{.*}} {{\[}}[0, 1, 2, 3]] slot 0
// CHECK: moert.keep_group %{{.*}} {{\[}}[0, 1], [2, 3]] slot 1

// Step: both exchanges (rows and counts) are sliced; the experts run on the
// G = 4 blocks of C rows; only t = 0 passes the fc2 biases; the MLP gathers
// its tp pair's tokens, runs 2 * tokens rows and scatters the summed halves.
// CHECK-LABEL: func.func @forward_step(
// CHECK-SAME: %[[TOKENS:[^:]*]]: i64, %[[X:[^:]*]]: !moert.view<f32, 64>
// CHECK: %[[CAP:.*]] = moert.gate
// CHECK: %[[G:.*]] = moert.group %{{.*}} slot 0
// CHECK: moert.all_to_all_sliced %{{.*}}, %[[G]] to_experts flat %{{.*}} -> %[[RECV:.*]] experts_local 2 capacity %[[CAP]] hidden 8 slices 2 : !moert.view<f32, 64> -> !moert.view<f32, 128>
// CHECK: moert.all_to_all_sliced %{{.*}}, %[[G]] to_experts flat %{{.*}} -> %[[ROWS:.*]] experts_local 2 capacity %{{.*}} hidden 1 slices 2 : !moert.view<i32, 4> -> !moert.view<i32, 8>
// CHECK: %[[R:.*]] = moert.rank
// CHECK: %[[TT:.*]] = arith.remsi %[[R]], %{{.*}} : i64
// CHECK: %[[FIRST:.*]] = arith.cmpi eq, %[[TT]], %{{.*}} : i64
// CHECK: moert.experts %{{.*}}, gelu %[[RECV]] {{.*}} down %{{.*}} bias %{{.*}} : !moert.view<f32, 16> if %[[FIRST]] -> %[[OUT:[^ ]*]] {{.*}} rows %[[ROWS]] : !moert.view<i32, 8> capacity %{{.*}} experts 2 blocks 4 hidden 8 ffn 8
// CHECK: moert.all_to_all_sliced %{{.*}}, %[[G]] from_experts flat %[[OUT]] -> %{{.*}} experts_local 2 capacity %[[CAP]] hidden 8 slices 2 : !moert.view<f32, 128> -> !moert.view<f32, 64>
// CHECK: moert.combine
// CHECK: %[[N:.*]] = arith.muli %[[TOKENS]], %{{.*}} : i64
// CHECK: %[[TP:.*]] = moert.group %{{.*}} slot 1
// CHECK: moert.all_gather %{{.*}}, %[[TP]] %[[X]] -> %[[GATHERED:.*]] count %[[N]] : !moert.view<f32, 64> -> !moert.view<f32, 128>
// CHECK: %[[ROWS2:.*]] = arith.muli %[[TOKENS]], %{{.*}} : i64
// CHECK: moert.dense_ffn %{{.*}}, gelu %[[GATHERED]] {{.*}} bias %{{.*}} : !moert.view<f32, 8> if %[[FIRST]] -> %[[PART:.*]] : !moert.view<f32, 128> tokens %[[ROWS2]] hidden 8 ffn 8
// CHECK: moert.reduce_scatter %{{.*}}, %[[TP]] %[[PART]] -> %{{.*}} count %[[N]] : !moert.view<f32, 128> -> !moert.view<f32, 64>
// CHECK: moert.residual_mix
// CHECK-NOT: shard.

// CPP: int32_t [[TABLE:v[0-9]+]][4] = {0, 1, 2, 3};
// CPP-NEXT: moert_status_t [[ST:v[0-9]+]] = moert_model_keep_group({{v[0-9]+}}, [[TABLE]], 1, 4, 0);
// CPP-NEXT: if ([[ST]] != MOERT_OK) return moert_model_fail([[ST]], {{v[0-9]+}}, "init: moert_model_keep_group (slot 0)");
// CPP: moert_model_keep_group({{v[0-9]+}}, {{v[0-9]+}}, 2, 2, 1);
// CPP-LABEL: moe_model_step(
// CPP-NOT: moert_group_create
// CPP: moert_context_group({{v[0-9]+}}, 0, {{v[0-9]+}});
// CPP-NEXT: if ({{.*}}) return moert_model_fail({{.*}}, "layer 0: moert_context_group");
// CPP: moert_all_to_all_sliced({{.*}}, MOERT_A2A_TO_EXPERTS, MOERT_A2A_FLAT, {{.*}}, 2, {{.*}}, 8, 2);
// CPP: .b1 =
// CPP-NEXT: [[ABSENT:v[0-9]+]] = moert_absent_view();
// CPP-NEXT: moert_view_t [[B2:v[0-9]+]] = {{v[0-9]+}} ? {{v[0-9]+}} : [[ABSENT]];
// CPP-NEXT: .b2 = [[B2]];
// CPP: moert_experts(
// CPP: moert_all_to_all_sliced({{.*}}, MOERT_A2A_FROM_EXPERTS, MOERT_A2A_FLAT, {{.*}}, 2, {{.*}}, 8, 2);
// CPP: moert_all_gather(
// CPP: moert_dense_ffn(
// CPP: moert_reduce_scatter(
module {
  shard.grid @grid_dp1_ep2_tp2(shape = 1x2x2)
  func.func @forward(%arg0: tensor<?x8xf32>,
      %arg1: tensor<4x8xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "l.0.gate.weight"},
      %arg2: tensor<2x8x8xf32> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "l.0.experts.{e}.fc1.weight"},
      %arg3: tensor<2x8xf32> {moe.shard = #moe.shard<[ep, tp]>, moe.weight = "l.0.experts.{e}.fc1.bias"},
      %arg4: tensor<2x8x8xf32> {moe.shard = #moe.shard<[ep, none, tp]>, moe.weight = "l.0.experts.{e}.fc2.weight"},
      %arg5: tensor<2x8xf32> {moe.shard = #moe.shard<[ep, none]>, moe.weight = "l.0.experts.{e}.fc2.bias"},
      %arg6: tensor<8x8xf32> {moe.shard = #moe.shard<[tp, none]>, moe.weight = "l.0.fc1.weight"},
      %arg7: tensor<8xf32> {moe.shard = #moe.shard<[tp]>, moe.weight = "l.0.fc1.bias"},
      %arg8: tensor<8x8xf32> {moe.shard = #moe.shard<[none, tp]>, moe.weight = "l.0.fc2.weight"},
      %arg9: tensor<8xf32> {moe.shard = #moe.shard<[none]>, moe.weight = "l.0.fc2.bias"},
      %arg10: tensor<2x8xf32> {moe.shard = #moe.shard<[none, none]>, moe.weight = "l.0.coefficient.weight"},
      %arg11: tensor<2xf32> {moe.shard = #moe.shard<[none]>, moe.weight = "l.0.coefficient.bias"}) -> tensor<?x8xf32> {
    %0 = moe.layer 0 (%h = %arg0) : tensor<?x8xf32> {
      %1 = moe.router %h, %arg1 : tensor<?x8xf32>, tensor<4x8xf32>
      %expert_ids, %weights, %slots, %counts, %capacity = moe.gate %1 <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 1> : tensor<?x4xf32>
      %2 = moe.dispatch %h, %expert_ids, %slots, %capacity : tensor<?x8xf32>, tensor<?x1xi32> -> tensor<4x?x8xf32>
      %3 = moe.all_to_all to_experts flat %2 groups [[0, 1, 2, 3]] {slices = 2 : i64} : tensor<4x?x8xf32> -> tensor<2x?x8xf32>
      %4 = moe.experts gelu %3 up %arg2 bias %arg3 down %arg4 bias %arg5 : (tensor<2x?x8xf32>, tensor<2x8x8xf32>, tensor<2x8xf32>, tensor<2x8x8xf32>, tensor<2x8xf32>) -> tensor<2x?x8xf32>
      %5 = moe.all_to_all from_experts flat %4 groups [[0, 1, 2, 3]] {slices = 2 : i64} : tensor<2x?x8xf32> -> tensor<4x?x8xf32>
      %6 = moe.combine %5, %expert_ids, %slots, %weights : tensor<4x?x8xf32>, tensor<?x1xi32>
      %all_gather = shard.all_gather %h on @grid_dp1_ep2_tp2 grid_axes = [2] gather_axis = 0 : tensor<?x8xf32> -> tensor<?x8xf32>
      %7 = moe.dense_ffn gelu %all_gather up %arg6 bias %arg7 down %arg8 bias %arg9 : (tensor<?x8xf32>, tensor<8x8xf32>, tensor<8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
      %reduce_scatter = shard.reduce_scatter %7 on @grid_dp1_ep2_tp2 grid_axes = [2] scatter_axis = 0 : tensor<?x8xf32> -> tensor<?x8xf32>
      %8 = moe.residual_mix %6, %reduce_scatter coefficient(%h, %arg10, %arg11 : tensor<?x8xf32>, tensor<2x8xf32>, tensor<2xf32>) : tensor<?x8xf32>
      moe.yield %8 : tensor<?x8xf32>
    } {moe.plan = #moe.plan<dp = 1, ep = 2, tp = 2>}
    return %0 : tensor<?x8xf32>
  }
}
