// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2 duplicate-tokens=drop" | FileCheck %s
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2 duplicate-tokens=drop report=table" -o /dev/null | FileCheck %s --check-prefix=TABLE
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2 duplicate-tokens=keep" | FileCheck %s --check-prefix=KEEP
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2 policy=latency report=table" -o /dev/null | FileCheck %s --check-prefix=KEEP
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2 policy=latency" | FileCheck %s --check-prefix=KEEP
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 duplicate-tokens=drop" | FileCheck %s --check-prefix=DP
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2 duplicate-tokens=drop report=json" -o /dev/null | FileCheck %s --check-prefix=JSON
// RUN: moe-opt %s --moe-assign-parallelism="mesh=1x4 attention-tp=2 duplicate-tokens=drop" | moe-opt --moe-fuse-kernels --convert-moe-to-moert="tokens=15 max-batch=2 max-seq=32" | FileCheck %s --check-prefix=LOWER

// Under tensor-parallel attention the two ranks of a tp group hold the same
// tokens. A dropless MoE layer then runs on each rank's share of them
// (DeepSpeed-TED): shard.all_slice over the attention grid's tp axis at the
// layer's start, shard.all_gather of the layer's output before the residual
// add. A layer with a capacity keeps every token (its capacity would change).
// With small steps of this tiny model the cost model keeps the duplicates
// (the extra all-gather costs more than the all-to-all bytes it saves).

// TABLE: duplicate tokens dropped (DeepSpeed-TED): MoE layers 0 run on 1/2 of their attention tp group's tokens; a2a/rank {{.*}} instead of {{.*}}
// CHECK: shard.grid @grid_dp2_ep1_tp2(shape = 2x1x2)
// CHECK: moe.layer 0
// CHECK: moe.layer 0 (%[[H:.*]] = %{{.*}})
// CHECK-NEXT: %[[S:.*]] = shard.all_slice %[[H]] on @grid_dp2_ep1_tp2 grid_axes = [2] slice_axis = 0 : tensor<?x64xf32> -> tensor<?x64xf32>
// CHECK-NEXT: moe.rms_norm %[[S]]
// CHECK: %[[C:.*]] = moe.combine
// CHECK-NEXT: %[[G:.*]] = shard.all_gather %[[C]] on @grid_dp2_ep1_tp2 grid_axes = [2] gather_axis = 0 : tensor<?x64xf32> -> tensor<?x64xf32>
// CHECK-NEXT: moe.yield %[[G]]
// CHECK: moe.layer 1
// CHECK-NOT: shard.all_slice
// CHECK: return

// KEEP-NOT: duplicate tokens dropped
// KEEP-NOT: shard.all_slice
// DP-NOT: shard.all_slice

// JSON: "token_share":2,"tp":1,"unshared_all_to_all_bytes":1572864

// LOWER: moert.layer %{{.*}} index 0 {
// LOWER: moert.layer %{{.*}} index 0 {
// LOWER: %[[SHARE:.*]] = moert.view {{.*}} -> !moert.view<f32, 512>
// LOWER-NEXT: %[[ROWS:.*]] = moert.token_share %{{.*}}, %{{.*}} %[[X:.*]] -> %[[SHARE]] tokens %[[T:.*]] hidden 64 : !moert.view<f32, 960> -> !moert.view<f32, 512>
// LOWER: moert.rms_norm {{.*}} tokens %[[ROWS]] hidden 64
// LOWER: moert.fused_combine {{.*}} tokens %[[ROWS]]
// LOWER: %[[PLUS:.*]] = arith.addi %[[T]], %c1
// LOWER: %[[PER:.*]] = arith.divsi %[[PLUS]], %c2
// LOWER: %[[COUNT:.*]] = arith.muli %[[PER]], %c64
// LOWER-NEXT: %[[OUT:.*]] = moert.view {{.*}} -> !moert.view<f32, 960>
// LOWER-NEXT: %[[ALL:.*]] = moert.view {{.*}} -> !moert.view<f32, 1024>
// LOWER-NEXT: moert.all_gather %{{.*}}, %{{.*}} %{{.*}} -> %[[ALL]] count %[[COUNT]] : !moert.view<f32, 512> -> !moert.view<f32, 1024>
// LOWER: moert.add %{{.*}}, %[[X]], %[[OUT]] -> %[[X]]

func.func @decoder(%ids: tensor<?xi32>, %seq: tensor<?xi32>, %pos: tensor<?xi32>,
    %rows: tensor<?xi32>, %cache: !moe.kv_cache<2, 16, f32>,
    %emb: tensor<96x64xf32> {moe.weight = "model.embed_tokens.weight"},
    %ln: tensor<64xf32> {moe.weight = "ln0"},
    %wq: tensor<64x64xf32> {moe.weight = "q"}, %wk: tensor<32x64xf32> {moe.weight = "k"},
    %wv: tensor<32x64xf32> {moe.weight = "v"}, %wo: tensor<64x64xf32> {moe.weight = "o"},
    %ln1: tensor<64xf32> {moe.weight = "ln1"}, %wr: tensor<4x64xf32> {moe.weight = "router"},
    %wg: tensor<4x32x64xf32> {moe.weight = "gate.{e}"}, %wu: tensor<4x32x64xf32> {moe.weight = "up.{e}"},
    %wd: tensor<4x64x32xf32> {moe.weight = "down.{e}"},
    %wr2: tensor<4x64xf32> {moe.weight = "router2"},
    %wg2: tensor<4x32x64xf32> {moe.weight = "gate2.{e}"}, %wu2: tensor<4x32x64xf32> {moe.weight = "up2.{e}"},
    %wd2: tensor<4x64x32xf32> {moe.weight = "down2.{e}"},
    %norm: tensor<64xf32> {moe.weight = "model.norm.weight"})
    -> (tensor<?x96xf32>, tensor<?xi32>) {
  %x = moe.embedding %ids, %emb : tensor<?xi32>, tensor<96x64xf32> -> tensor<?x64xf32>
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %n = moe.rms_norm %h, %ln epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
    %a = moe.attention %n positions %pos sequences %seq cache %cache : !moe.kv_cache<2, 16, f32>
        q %wq k %wk v %wv o %wo heads 4 kv_heads 2 head_dim 16 rope <theta = 1.0e6>
        : tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  %z = moe.layer 0 (%h = %y) : tensor<?x64xf32> {
    %n = moe.rms_norm %h, %ln1 epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
    %l = moe.router %n, %wr : tensor<?x64xf32>, tensor<4x64xf32>
    %ids2, %w, %slots, %counts, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x4xf32>
    %d = moe.dispatch %n, %ids2, %slots, %cap : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<4x?x64xf32>
    %e = moe.experts silu %d gate %wg up %wu down %wd : (tensor<4x?x64xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x?x64xf32>
    %c = moe.combine %e, %ids2, %slots, %w : tensor<4x?x64xf32>, tensor<?x2xi32>
    moe.yield %c : tensor<?x64xf32>
  }
  %u = moe.layer 1 (%h = %z) : tensor<?x64xf32> {
    %l = moe.router %h, %wr2 : tensor<?x64xf32>, tensor<4x64xf32>
    %ids2, %w, %slots, %counts, %cap = moe.gate %l <scoring = softmax, top_k = 2, capacity_factor = 1.25> : tensor<?x4xf32>
    %d = moe.dispatch %h, %ids2, %slots, %cap : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<4x?x64xf32>
    %e = moe.experts silu %d gate %wg2 up %wu2 down %wd2 : (tensor<4x?x64xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x?x64xf32>
    %c = moe.combine %e, %ids2, %slots, %w : tensor<4x?x64xf32>, tensor<?x2xi32>
    moe.yield %c : tensor<?x64xf32>
  }
  %g = moe.gather_rows %u, %rows : tensor<?x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  %f = moe.rms_norm %g, %norm epsilon 1.0e-6 : tensor<?x64xf32>, tensor<64xf32>
  %l = moe.lm_head %f, %emb : tensor<?x64xf32>, tensor<96x64xf32> -> tensor<?x96xf32>
  %i = moe.argmax %l : tensor<?x96xf32> -> tensor<?xi32>
  return %l, %i : tensor<?x96xf32>, tensor<?xi32>
}
