// RUN: moe-opt %s -split-input-file --moe-fuse-kernels --convert-moe-to-moert="tokens=16" | FileCheck %s
// RUN: moe-opt %s -split-input-file --moe-fuse-kernels --convert-moe-to-moert="tokens=16" | moe-opt -split-input-file | FileCheck %s

// The fused combine of a yielded Qwen-style epilogue writes the layer input
// in place (addend = out = x): no moert.combine, moert.shared_add or
// moert.add remains. The experts fuse on a gate_up weight packed at load
// (w1 then w3 rows of each expert, experts 2 * 128 * 64 elements apart), and
// the gated shared expert folds into the same call, its gate and up packed
// into one [64, 64] tensor (su right after sg), its output feeding the
// combine's shared operand.
// CHECK-LABEL: func.func @qwen_init(
// CHECK-SAME: %[[STATE:[^:]*]]: !moert.buffer<883392>)
// CHECK: %[[GU:.*]] = moert.view %[[STATE]][512] : !moert.buffer<883392> -> !moert.view<f32, 131072>
// CHECK: moert.load_weight %{{.*}}, %{{.*}} "e.{e}.w1" experts [0, 8) shape [128, 64] begin [0, 0] end [0, 0] -> %[[GU]] stride 16384 : !moert.view<f32, 131072>
// CHECK: %[[UP:.*]] = moert.view %[[STATE]][8704] : !moert.buffer<883392> -> !moert.view<f32, 122880>
// CHECK: moert.load_weight %{{.*}}, %{{.*}} "e.{e}.w3" experts [0, 8) shape [128, 64] begin [0, 0] end [0, 0] -> %[[UP]] stride 16384 : !moert.view<f32, 122880>
// CHECK: %[[SG:.*]] = moert.view %[[STATE]][197120] : !moert.buffer<883392> -> !moert.view<f32, 4096>
// CHECK: moert.load_weight %{{.*}}, %{{.*}} "sg" shape [32, 64] begin [0, 0] end [0, 0] -> %[[SG]] : !moert.view<f32, 4096>
// CHECK: %[[SU:.*]] = moert.view %[[STATE]][199168] : !moert.buffer<883392> -> !moert.view<f32, 2048>
// CHECK: moert.load_weight %{{.*}}, %{{.*}} "su" shape [32, 64] begin [0, 0] end [0, 0] -> %[[SU]] : !moert.view<f32, 2048>
// CHECK-LABEL: func.func @qwen_step(
// CHECK-SAME: %[[X:[^:]*]]: !moert.view<f32, 1024>)
// CHECK-NOT: moert.dense_ffn
// CHECK-NOT: moert.experts
// CHECK: moert.fused_experts %{{.*}}, silu %{{.*}} : !moert.view<f32, 8192> gate_up %{{.*}} : !moert.view<f32, 131072> down %{{.*}} : !moert.view<f32, 65536> -> %[[Y:[^ ]*]] : !moert.view<f32, 8192> rows %{{.*}} : !moert.view<i32, 8> capacity %{{.*}} experts 8 blocks 1 hidden 64 ffn 128 shared(%[[X]] : !moert.view<f32, 1024> gate_up %{{.*}} : !moert.view<f32, 4096> down %{{.*}} : !moert.view<f32, 2048> -> %[[SH:[^ ]*]] : !moert.view<f32, 1024> tokens %{{.*}} ffn 32)
// CHECK-NOT: moert.combine
// CHECK-NOT: moert.shared_add
// CHECK: moert.fused_combine %{{.*}}, %[[Y]], %{{.*}}, %{{.*}}, %{{.*}} shared(%[[SH]] : !moert.view<f32, 1024> gate %{{.*}} : !moert.view<f32, 64>) x(%[[X]] : !moert.view<f32, 1024>) addend(%[[X]] : !moert.view<f32, 1024>) -> %[[X]] tokens %{{.*}} capacity %{{.*}} hidden 64 top_k 2 experts 8
// CHECK-NOT: moert.add
// CHECK: }
// CHECK-NEXT: return
module {
func.func @qwen(%x: tensor<?x64xf32>,
    %wg: tensor<8x64xf32> {moe.weight = "g"},
    %w1: tensor<8x128x64xf32> {moe.weight = "e.{e}.w1"},
    %w3: tensor<8x128x64xf32> {moe.weight = "e.{e}.w3"},
    %w2: tensor<8x64x128xf32> {moe.weight = "e.{e}.w2"},
    %sg: tensor<32x64xf32> {moe.weight = "sg"},
    %su: tensor<32x64xf32> {moe.weight = "su"},
    %sd: tensor<64x32xf32> {moe.weight = "sd"},
    %wsg: tensor<1x64xf32> {moe.weight = "wsg"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %l = moe.router %h, %wg : tensor<?x64xf32>, tensor<8x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<8x?x64xf32>
    %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %sh = moe.dense_ffn silu %h gate %sg up %su down %sd : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
    %r = moe.shared_add %o, %sh gated(%h, %wsg : tensor<?x64xf32>, tensor<1x64xf32>) : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}
}

// -----

// Negative: the combined output has a second user, so the shared add stays
// a kernel of its own and the fused combine writes a fresh buffer; the layer
// residual stays a moert.add.
// CHECK-LABEL: func.func @twice_step(
// CHECK-SAME: %[[X:[^:]*]]: !moert.view<f32, 1024>)
// CHECK: moert.fused_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} -> %[[Y:[^ ]*]] tokens
// CHECK: moert.shared_add %{{.*}}, %[[Y]], %[[Y]] -> %[[R:[^ ]*]] tokens
// CHECK: moert.add %{{.*}}, %[[X]], %[[R]] -> %[[X]]
module {
func.func @twice(%x: tensor<?x64xf32>,
    %wg: tensor<8x64xf32> {moe.weight = "g"},
    %w1: tensor<8x128x64xf32> {moe.weight = "e.{e}.w1"},
    %w3: tensor<8x128x64xf32> {moe.weight = "e.{e}.w3"},
    %w2: tensor<8x64x128xf32> {moe.weight = "e.{e}.w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %l = moe.router %h, %wg : tensor<?x64xf32>, tensor<8x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<8x?x64xf32>
    %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    %r = moe.shared_add %o, %o : tensor<?x64xf32>
    moe.yield %r : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}
}
