// RUN: moe-opt %S/Inputs/prmoe-pyramid.mlir --moe-assign-parallelism="mesh=16x8" | FileCheck %s
// RUN: moe-opt %S/Inputs/prmoe-pyramid.mlir --moe-assign-parallelism="mesh=16x8 report=table" -o /dev/null | FileCheck %s --check-prefix=REPORT

// DeepSpeed-MoE's pyramid-residual example on 128 ranks: every layer gets its
// own split. 32 experts: ep 32 x dp 4; 64: ep 64 x dp 2; 128: ep 128 x dp 1.
// The residual MLP and its coefficient are replicated (dp) in every layer.

// CHECK-LABEL: func.func @forward
// CHECK-SAME: tensor<32x1024xf16> {moe.shard = #moe.shard<[none, none]>, moe.weight = "language_model.encoder.layers.1.mlp.deepspeed_moe.gate.wg.weight"}
// CHECK-SAME: tensor<1x4096x1024xf16> {moe.shard = #moe.shard<[ep, tp, none]>, moe.weight = "language_model.encoder.layers.1.mlp.deepspeed_moe.experts.deepspeed_experts.{e}.dense_h_to_4h.weight"}
// CHECK-SAME: tensor<1x4096xf16> {moe.shard = #moe.shard<[ep, tp]>
// CHECK-SAME: tensor<1x1024x4096xf16> {moe.shard = #moe.shard<[ep, none, tp]>
// CHECK-SAME: tensor<1x1024xf16> {moe.shard = #moe.shard<[ep, none]>
// CHECK-SAME: tensor<4096x1024xf16> {moe.shard = #moe.shard<[none, none]>, moe.weight = "language_model.encoder.layers.1.mlp.mlp.dense_h_to_4h.weight"}
// CHECK-SAME: tensor<2x1024xf16> {moe.shard = #moe.shard<[none, none]>, moe.weight = "language_model.encoder.layers.1.mlp.coefficient.weight"}

// CHECK: moe.layer 1
// CHECK: moe.all_to_all to_experts hierarchical %{{.*}} groups {{\[}}[0, 1, {{.*}}, 31], [32, {{.*}}, 63], [64, {{.*}}, 95], [96, {{.*}}, 127]] ranks_per_node 8 : tensor<32x?x1024xf16> -> tensor<1x?x1024xf16>
// CHECK: moe.residual_mix
// CHECK: {moe.plan = #moe.plan<dp = 4, ep = 32, tp = 1, all_to_all = hierarchical>}
// CHECK: moe.layer 2
// CHECK: moe.all_to_all to_experts hierarchical %{{.*}} groups {{\[}}[0, 1, {{.*}}, 63], [64, {{.*}}, 127]] ranks_per_node 8 : tensor<64x?x1024xf16> -> tensor<1x?x1024xf16>
// CHECK: {moe.plan = #moe.plan<dp = 2, ep = 64, tp = 1, all_to_all = hierarchical>}
// CHECK: moe.layer 3
// CHECK: moe.all_to_all to_experts hierarchical %{{.*}} groups {{\[}}[0, 1, {{.*}}, 127]] ranks_per_node 8 : tensor<128x?x1024xf16> -> tensor<1x?x1024xf16>
// CHECK: {moe.plan = #moe.plan<dp = 1, ep = 128, tp = 1, all_to_all = hierarchical>}

// The report: one row per layer, checkable by hand. Layer 1, top-1 with
// capacity factor 1 at 4096 tokens per rank: C = ceil(1 * 4096 / 32) = 128
// rows per expert; each rank sends 31 peers 1 expert x 128 rows x 1024 x 2 B
// = 256 KiB each = 7.8 MiB; weights per rank: one expert (2 x 4096 x 1024 +
// 4096 + 1024 halves = 16.0 MiB), the residual MLP (16.0 MiB) and the router
// and coefficient (64 KiB + 4 KiB) = 32.1 MiB.
// REPORT: moe plan: mesh 16x8, throughput policy, 4096 tokens per rank per step
// REPORT-NEXT: layer kind     experts /rank   ep   tp   dp all_to_all   capacity     a2a/rank weights/rank    est. us
// REPORT-NEXT:     1 residual      32     1   32    1    4 hierarchical      128      7.8 MiB     32.1 MiB
// REPORT-NEXT:     2 residual      64     1   64    1    2 hierarchical       64      7.9 MiB     32.1 MiB
// REPORT-NEXT:     3 residual     128     1  128    1    1 hierarchical       32      7.9 MiB     32.3 MiB
// REPORT-NEXT: total: {{[0-9.]+}} us per step, {{[0-9.]+}} MiB per rank of 80.0 GiB
