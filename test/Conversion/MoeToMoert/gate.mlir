// RUN: moe-opt %s --convert-moe-to-moert="tokens=16" | FileCheck %s --check-prefix=UNFUSED
// RUN: moe-opt %s --moe-fuse-kernels --convert-moe-to-moert="tokens=16" | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --convert-moe-to-moert="tokens=16" | moe-opt | FileCheck %s --check-prefix=UNFUSED

// moe.gate lowers to one runtime call per stage, through a scores buffer
// [16 x 8] f32 placed right after the logits (128 floats on); the fused
// gate is the single moert.gate.
// UNFUSED-LABEL: func.func @gate_step(
// UNFUSED: %[[L:.*]] = moert.view %{{[a-z0-9]+}}{{\[}}[[#OFF:]]{{\]}} : {{.*}} -> !moert.view<f32, 128>
// UNFUSED: moert.router %{{.*}} -> %[[L]]
// UNFUSED: %[[SC:.*]] = moert.view %{{[a-z0-9]+}}{{\[}}[[#OFF+128]]{{\]}} : {{.*}} -> !moert.view<f32, 128>
// UNFUSED: moert.gate_scores %{{.*}}, %[[L]] -> %[[SC]] tokens %{{.*}} experts 8 <scoring = sigmoid, top_k = 2, normalize = selected>
// UNFUSED: moert.gate_select %{{.*}}, %[[SC]] correction %{{.*}} -> %[[IDS:.*]], %[[W:.*]] tokens
// UNFUSED: %[[CAP:.*]] = moert.gate_slots %{{.*}}, %[[IDS]], %[[W]] -> %[[SL:.*]], %[[CNT:.*]] tokens
// UNFUSED: moert.gate_normalize %{{.*}}, %[[SL]] -> %[[W]] tokens
// UNFUSED: moert.record_drops %{{.*}} counts %[[CNT]]
// UNFUSED-NOT: moert.gate %
// FUSED-LABEL: func.func @gate_step(
// FUSED-NOT: moert.gate_
// FUSED: moert.gate %{{.*}}, %{{.*}} correction %{{.*}} -> {{.*}} experts 8 <scoring = sigmoid, top_k = 2, normalize = selected>
// FUSED-NOT: moert.gate_
module {
func.func @gate(%x: tensor<?x64xf32>,
    %wg: tensor<8x64xf32> {moe.weight = "g"},
    %b: tensor<8xf32> {moe.weight = "b"},
    %w1: tensor<8x128x64xf32> {moe.weight = "e.{e}.w1"},
    %w3: tensor<8x128x64xf32> {moe.weight = "e.{e}.w3"},
    %w2: tensor<8x64x128xf32> {moe.weight = "e.{e}.w2"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %l = moe.router %h, %wg : tensor<?x64xf32>, tensor<8x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l correction %b <scoring = sigmoid, top_k = 2, normalize = selected> : tensor<?x8xf32>, tensor<8xf32>
    %d = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<8x?x64xf32>
    %e = moe.experts silu %d gate %w1 up %w3 down %w2 : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    moe.yield %o : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}
}
