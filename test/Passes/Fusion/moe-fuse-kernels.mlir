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
