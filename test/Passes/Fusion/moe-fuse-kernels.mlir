// RUN: moe-opt %s -split-input-file --moe-fuse-kernels | FileCheck %s

// Mixtral: the combine alone becomes a fused combine with no epilogue.
// CHECK-LABEL: func.func @combine
// CHECK-NOT: moe.combine
// CHECK: %[[F:.*]] = moe.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>
// CHECK-NEXT: moe.yield %[[F]]
func.func @combine(%x: tensor<?x64xf32>, %e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    moe.yield %o : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// Qwen2-MoE: the gated shared add joins the combine's epilogue.
// CHECK-LABEL: func.func @gated_shared
// CHECK: moe.layer 0 (%[[H:.*]] = %{{.*}})
// CHECK: %[[SH:.*]] = moe.dense_ffn
// CHECK-NOT: moe.combine
// CHECK-NOT: moe.shared_add
// CHECK: %[[F:.*]] = moe.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} shared(%[[SH]] : tensor<?x64xf32>) shared_gate(%[[WSG:.*]] : tensor<1x64xf32>) x(%[[H]] : tensor<?x64xf32>)
// CHECK-NEXT: moe.yield %[[F]]
func.func @gated_shared(%x: tensor<?x64xf32>, %e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>,
    %wg: tensor<32x64xf32>, %wu: tensor<32x64xf32>, %wd: tensor<64x32xf32>, %wsg: tensor<1x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %sh = moe.dense_ffn silu %h gate %wg up %wu down %wd : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
    %r = moe.shared_add %o, %sh gated(%h, %wsg : tensor<?x64xf32>, tensor<1x64xf32>) : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// DeepSeek: the plain shared add (no gate, so no x).
// CHECK-LABEL: func.func @plain_shared
// CHECK-NOT: moe.shared_add
// CHECK: moe.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} shared(%{{.*}} : tensor<?x64xbf16>) : tensor<8x?x64xbf16>
func.func @plain_shared(%x: tensor<?x64xbf16>, %e: tensor<8x?x64xbf16>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>,
    %wg: tensor<32x64xbf16>, %wu: tensor<32x64xbf16>, %wd: tensor<64x32xbf16>) -> tensor<?x64xbf16> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xbf16>, tensor<?x2xi32>
    %sh = moe.dense_ffn silu %h gate %wg up %wu down %wd : (tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<32x64xbf16>, tensor<64x32xbf16>) -> tensor<?x64xbf16>
    %r = moe.shared_add %o, %sh : tensor<?x64xbf16>
    moe.yield %r : tensor<?x64xbf16>
  }
  return %y : tensor<?x64xbf16>
}

// -----

// PR-MoE: the learned residual mix joins the epilogue.
// CHECK-LABEL: func.func @residual_mix
// CHECK: moe.layer 0 (%[[H:.*]] = %{{.*}})
// CHECK: %[[D:.*]] = moe.dense_ffn
// CHECK-NOT: moe.residual_mix
// CHECK: %[[F:.*]] = moe.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} mix(%[[D]], %{{.*}}, %{{.*}} : tensor<?x32xbf16>, tensor<2x32xbf16>, tensor<2xbf16>) x(%[[H]] : tensor<?x32xbf16>)
// CHECK-NEXT: moe.yield %[[F]]
func.func @residual_mix(%x: tensor<?x32xbf16>, %e: tensor<4x?x32xbf16>, %ids: tensor<?x1xi32>, %s: tensor<?x1xi32>, %w: tensor<?x1xf32>,
    %w1: tensor<64x32xbf16>, %w2: tensor<32x64xbf16>, %wc: tensor<2x32xbf16>, %bc: tensor<2xbf16>) -> tensor<?x32xbf16> {
  %y = moe.layer 0 (%h = %x) : tensor<?x32xbf16> {
    %o = moe.combine %e, %ids, %s, %w : tensor<4x?x32xbf16>, tensor<?x1xi32>
    %d = moe.dense_ffn gelu %h up %w1 down %w2 : (tensor<?x32xbf16>, tensor<64x32xbf16>, tensor<32x64xbf16>) -> tensor<?x32xbf16>
    %r = moe.residual_mix %o, %d coefficient(%h, %wc, %bc : tensor<?x32xbf16>, tensor<2x32xbf16>, tensor<2xbf16>) : tensor<?x32xbf16>
    moe.yield %r : tensor<?x32xbf16>
  }
  return %y : tensor<?x32xbf16>
}

// -----

// Negative: the combined output has a second user, so the shared add and
// the mix stay separate ops (the fused op would not give the plain combine).
// CHECK-LABEL: func.func @second_user
// CHECK: %[[F:.*]] = moe.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x?x64xf32>, tensor<?x2xi32> -> tensor<?x64xf32>
// CHECK: moe.shared_add %[[F]], %{{.*}} :
// CHECK: moe.residual_mix %[[F]], %{{.*}} coefficient
func.func @second_user(%x: tensor<?x64xf32>, %e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>,
    %sh: tensor<?x64xf32>, %wc: tensor<2x64xf32>, %bc: tensor<2xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %a = moe.shared_add %o, %sh : tensor<?x64xf32>
    %r = moe.residual_mix %o, %a coefficient(%h, %wc, %bc : tensor<?x64xf32>, tensor<2x64xf32>, tensor<2xf32>) : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// Negative: a constant-coefficient mix (no learned weight) does not fuse.
// CHECK-LABEL: func.func @constant_mix
// CHECK: %[[F:.*]] = moe.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x?x64xf32>
// CHECK: moe.residual_mix %[[F]], %{{.*}} constant [2.500000e-01, 7.500000e-01]
func.func @constant_mix(%x: tensor<?x64xf32>, %e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>,
    %d: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %r = moe.residual_mix %o, %d constant [0.25, 0.75] : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// The gate after its router GEMM becomes one fused gate.
// CHECK-LABEL: func.func @gate
// CHECK: %[[L:.*]] = moe.router
// CHECK-NOT: moe.gate
// CHECK: %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} = moe.fused_gate %[[L]] correction %{{.*}} <scoring = sigmoid, top_k = 2, normalize = selected> : tensor<?x8xf32>, tensor<8xf32>
func.func @gate(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %b: tensor<8xf32>) -> tensor<?x2xi32> {
  %l = moe.router %x, %wg : tensor<?x64xf32>, tensor<8x64xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l correction %b <scoring = sigmoid, top_k = 2, normalize = selected> : tensor<?x8xf32>, tensor<8xf32>
  return %ids : tensor<?x2xi32>
}

// -----

// Negative: the logits have a second user, so the gate stays unfused.
// CHECK-LABEL: func.func @gate_second_user
// CHECK-NOT: moe.fused_gate
// CHECK: moe.gate
func.func @gate_second_user(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>) -> (tensor<?x2xi32>, tensor<?x8xf32>) {
  %l = moe.router %x, %wg : tensor<?x64xf32>, tensor<8x64xf32>
  %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2> : tensor<?x8xf32>
  return %ids, %l : tensor<?x2xi32>, tensor<?x8xf32>
}

// -----

// Mixtral: gated experts whose gate and up weights are arguments read only
// here become fused experts on one packed gate_up weight.
// CHECK-LABEL: func.func @experts
// CHECK-SAME: (%[[X:[^:]*]]: tensor<8x?x64xf32>, %[[WG:[^:]*]]: tensor<8x128x64xf32>, %[[WU:[^:]*]]: tensor<8x128x64xf32>, %[[WD:[^:]*]]: tensor<8x64x128xf32>)
// CHECK-NOT: moe.experts
// CHECK: %[[GU:.*]] = tensor.concat dim(1) %[[WG]], %[[WU]] : (tensor<8x128x64xf32>, tensor<8x128x64xf32>) -> tensor<8x256x64xf32>
// CHECK: %[[Y:.*]] = moe.fused_experts silu %[[X]] gate_up %[[GU]] down %[[WD]] : (tensor<8x?x64xf32>, tensor<8x256x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
// CHECK-NEXT: return %[[Y]]
func.func @experts(%x: tensor<8x?x64xf32>, %wg: tensor<8x128x64xf32>, %wu: tensor<8x128x64xf32>, %wd: tensor<8x64x128xf32>) -> tensor<8x?x64xf32> {
  %y = moe.experts silu %x gate %wg up %wu down %wd : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
  return %y : tensor<8x?x64xf32>
}

// -----

// Negative: the up weight has a second user, so packing it at load would
// leave that user without its tensor.
// CHECK-LABEL: func.func @experts_weight_second_user
// CHECK-NOT: moe.fused_experts
// CHECK: moe.experts silu
func.func @experts_weight_second_user(%x: tensor<8x?x64xf32>, %wg: tensor<8x128x64xf32>, %wu: tensor<8x128x64xf32>, %wd: tensor<8x64x128xf32>) -> (tensor<8x?x64xf32>, tensor<8x128x64xf32>) {
  %y = moe.experts silu %x gate %wg up %wu down %wd : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
  return %y, %wu : tensor<8x?x64xf32>, tensor<8x128x64xf32>
}

// -----

// Negative: a plain FFN (fc1 + bias, GeLU, fc2 + bias) is one runtime call
// already; there is no gate/up pair to pack.
// CHECK-LABEL: func.func @plain_experts
// CHECK-NOT: moe.fused_experts
// CHECK: moe.experts gelu
func.func @plain_experts(%x: tensor<4x?x32xbf16>, %w1: tensor<4x64x32xbf16>, %b1: tensor<4x64xbf16>, %w2: tensor<4x32x64xbf16>, %b2: tensor<4x32xbf16>) -> tensor<4x?x32xbf16> {
  %y = moe.experts gelu %x up %w1 bias %b1 down %w2 bias %b2 : (tensor<4x?x32xbf16>, tensor<4x64x32xbf16>, tensor<4x64xbf16>, tensor<4x32x64xbf16>, tensor<4x32xbf16>) -> tensor<4x?x32xbf16>
  return %y : tensor<4x?x32xbf16>
}

// -----

// DeepSeek / Qwen2-MoE: the gated shared expert with the routed experts'
// activation and dtype joins the fused experts; its output feeds the fused
// combine's shared operand (the sigmoid gate stays in the combine).
// CHECK-LABEL: func.func @shared_folded
// CHECK: moe.layer 0 (%[[H:.*]] = %{{.*}})
// CHECK-DAG: %[[GU:.*]] = tensor.concat dim(1) %{{.*}}, %{{.*}} : (tensor<8x32x64xf32>, tensor<8x32x64xf32>) -> tensor<8x64x64xf32>
// CHECK-DAG: %[[SGU:.*]] = tensor.concat dim(0) %{{.*}}, %{{.*}} : (tensor<48x64xf32>, tensor<48x64xf32>) -> tensor<96x64xf32>
// CHECK: %[[Y:.*]], %[[SH:.*]] = moe.fused_experts silu %{{.*}} gate_up %[[GU]] down %{{.*}} shared(%[[H]] gate_up %[[SGU]] down %{{.*}}) : (tensor<8x?x64xf32>, tensor<8x64x64xf32>, tensor<8x64x32xf32>, tensor<?x64xf32>, tensor<96x64xf32>, tensor<64x48xf32>) -> (tensor<8x?x64xf32>, tensor<?x64xf32>)
// CHECK-NOT: moe.dense_ffn
// CHECK: moe.fused_combine %[[Y]], %{{.*}}, %{{.*}}, %{{.*}} shared(%[[SH]] : tensor<?x64xf32>) shared_gate(%{{.*}} : tensor<1x64xf32>) x(%[[H]] : tensor<?x64xf32>)
func.func @shared_folded(%x: tensor<?x64xf32>, %e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>,
    %eg: tensor<8x32x64xf32>, %eu: tensor<8x32x64xf32>, %ed: tensor<8x64x32xf32>,
    %wg: tensor<48x64xf32>, %wu: tensor<48x64xf32>, %wd: tensor<64x48xf32>, %wsg: tensor<1x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %r = moe.experts silu %e gate %eg up %eu down %ed : (tensor<8x?x64xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<8x?x64xf32>
    %o = moe.combine %r, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %sh = moe.dense_ffn silu %h gate %wg up %wu down %wd : (tensor<?x64xf32>, tensor<48x64xf32>, tensor<48x64xf32>, tensor<64x48xf32>) -> tensor<?x64xf32>
    %a = moe.shared_add %o, %sh gated(%h, %wsg : tensor<?x64xf32>, tensor<1x64xf32>) : tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// Negative: a tensor-parallel shared expert runs on the tp group's gathered
// tokens (shard.all_gather ... reduce_scatter), not on this rank's: it stays
// a separate dense FFN while the routed experts still fuse.
// CHECK-LABEL: func.func @shared_tensor_parallel
// CHECK: moe.fused_experts silu %{{.*}} gate_up %{{.*}} down %{{.*}} : (
// CHECK: moe.dense_ffn silu
// CHECK-NOT: shared(
// CHECK: moe.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} shared(
shard.grid @grid(shape = 1x1x2)
func.func @shared_tensor_parallel(%x: tensor<?x64xf32>, %e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>,
    %eg: tensor<8x32x64xf32>, %eu: tensor<8x32x64xf32>, %ed: tensor<8x64x32xf32>,
    %wg: tensor<24x64xf32>, %wu: tensor<24x64xf32>, %wd: tensor<64x24xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %r = moe.experts silu %e gate %eg up %eu down %ed : (tensor<8x?x64xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<8x?x64xf32>
    %o = moe.combine %r, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %g = shard.all_gather %h on @grid grid_axes = [2] gather_axis = 0 : tensor<?x64xf32> -> tensor<?x64xf32>
    %d = moe.dense_ffn silu %g gate %wg up %wu down %wd : (tensor<?x64xf32>, tensor<24x64xf32>, tensor<24x64xf32>, tensor<64x24xf32>) -> tensor<?x64xf32>
    %sh = shard.reduce_scatter %d on @grid grid_axes = [2] reduction = sum scatter_axis = 0 : tensor<?x64xf32> -> tensor<?x64xf32>
    %a = moe.shared_add %o, %sh : tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}

// -----

// Negative: the shared expert's activation differs from the experts', so
// one packed grouped GEMM epilogue cannot serve both.
// CHECK-LABEL: func.func @shared_other_activation
// CHECK: moe.fused_experts silu %{{.*}} gate_up %{{.*}} down %{{.*}} : (
// CHECK: moe.dense_ffn gelu
func.func @shared_other_activation(%x: tensor<?x64xf32>, %e: tensor<8x?x64xf32>, %ids: tensor<?x2xi32>, %s: tensor<?x2xi32>, %w: tensor<?x2xf32>,
    %eg: tensor<8x32x64xf32>, %eu: tensor<8x32x64xf32>, %ed: tensor<8x64x32xf32>,
    %wg: tensor<48x64xf32>, %wu: tensor<48x64xf32>, %wd: tensor<64x48xf32>) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %r = moe.experts silu %e gate %eg up %eu down %ed : (tensor<8x?x64xf32>, tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>) -> tensor<8x?x64xf32>
    %o = moe.combine %r, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %sh = moe.dense_ffn gelu %h gate %wg up %wu down %wd : (tensor<?x64xf32>, tensor<48x64xf32>, tensor<48x64xf32>, tensor<64x48xf32>) -> tensor<?x64xf32>
    %a = moe.shared_add %o, %sh : tensor<?x64xf32>
    moe.yield %a : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}
