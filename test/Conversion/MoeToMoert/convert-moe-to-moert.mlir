// RUN: moe-opt %s -split-input-file --convert-moe-to-moert="tokens=16 report=true" | FileCheck %s

// A single-rank Mixtral-style layer, 16 tokens at most: dropless, so the
// capacity bound is 16 and the expert buffer is 8 x 16 x 64 floats. The
// model becomes an init entry that loads the weights into the rank's state
// buffer once, and a step entry that runs the layer on the arena behind the
// weights (byte 788480 on). The logits die at the gate, so the dispatch
// buffer reuses their bytes; the gate's counts stay live until the expert
// stages read them as row counts. Unfused, the gated FFN runs as stage
// calls through two fp32 [8, 16, 128] intermediates (65536 bytes each),
// planned in the arena for the experts op alone (the logits' old bytes).
// CHECK: buffer plan @mixtral_step: tokens 16, activation arena 197056 bytes per rank (peak), weights 788480 bytes per rank
// CHECK: module attributes {moert.max_tokens = 16 : i64}
// CHECK-LABEL: func.func @mixtral_init(
// CHECK-SAME: %[[CTX:.*]]: !moert.context, %[[W:.*]]: !moert.weights, %[[STATE:.*]]: !moert.buffer<985536>)
// CHECK-SAME: moert.entry = "init"
// CHECK: %[[WG:.*]] = moert.view %[[STATE]][0] : !moert.buffer<985536> -> !moert.view<f32, 512>
// CHECK: moert.load_weight %[[CTX]], %[[W]] "model.layers.0.block_sparse_moe.gate.weight" shape [8, 64] begin [0, 0] end [0, 0] -> %[[WG]]
// CHECK: %[[W1:.*]] = moert.view %[[STATE]][512]
// CHECK: moert.load_weight %[[CTX]], %[[W]] "model.layers.0.block_sparse_moe.experts.{e}.w1.weight" experts [0, 8) shape [128, 64] begin [0, 0] end [0, 0] -> %[[W1]] : !moert.view<f32, 65536>
// CHECK-NOT: moert.rank
// CHECK: return
// CHECK-LABEL: func.func @mixtral_step(
// CHECK-SAME: %[[CTX:.*]]: !moert.context, %[[STATE:.*]]: !moert.buffer<985536>, %[[STATS:.*]]: !moert.stats, %[[S:.*]]: i64, %[[X:.*]]: !moert.view<f32, 1024>)
// CHECK-SAME: moert.entry = "step", moert.peak_bytes = 197056 : i64, moert.weight_bytes = 788480 : i64
// CHECK-NOT: moert.alloc
// CHECK: %[[WG:.*]] = moert.view %[[STATE]][0] : !moert.buffer<985536> -> !moert.view<f32, 512>
// CHECK: %[[STEP_W1:.*]] = moert.view %[[STATE]][512] : !moert.buffer<985536> -> !moert.view<f32, 65536>
// CHECK: moert.layer %[[STATS]] index 0 {
// CHECK: %[[LOGITS:.*]] = moert.view %[[STATE]][197120] : !moert.buffer<985536> -> !moert.view<f32, 128>
// CHECK: moert.router %[[CTX]], %[[X]], %[[WG]] -> %[[LOGITS]] tokens %[[S]] hidden 64 experts 8
// CHECK: %[[COUNTS:.*]] = moert.view %[[STATE]][246368] : !moert.buffer<985536> -> !moert.view<i32, 8>
// CHECK: %[[CAP:.*]] = moert.gate_slots %[[CTX]], %{{.*}}, %{{.*}} -> %{{.*}}, %[[COUNTS]] tokens %[[S]] experts 8 <scoring = softmax, top_k = 2, normalize = selected>
// CHECK: moert.gate_normalize %[[CTX]]
// CHECK: moert.record_drops %[[CTX]], %[[STATS]] layer 0 counts %[[COUNTS]] tokens %[[S]] top_k 2 experts 8
// CHECK: %[[BUF:.*]] = moert.view %[[STATE]][229888] : !moert.buffer<985536> -> !moert.view<f32, 8192>
// CHECK: moert.dispatch %[[CTX]], %[[X]], {{.*}} -> %[[BUF]] tokens %[[S]] capacity %[[CAP]] hidden 64 top_k 2 experts 8
// CHECK: %[[OUT:.*]] = moert.view %[[STATE]][238080] : !moert.buffer<985536> -> !moert.view<f32, 8192>
// CHECK: %[[H:.*]] = moert.view %[[STATE]][197120] : !moert.buffer<985536> -> !moert.view<f32, 16384>
// CHECK: %[[U:.*]] = moert.view %[[STATE]][213504] : !moert.buffer<985536> -> !moert.view<f32, 16384>
// CHECK: moert.experts_linear %[[CTX]], %[[STEP_W1]] : !moert.view<f32, 65536> in %[[BUF]] : !moert.view<f32, 8192> -> %[[H]] : !moert.view<f32, 16384> rows %[[COUNTS]] : !moert.view<i32, 8> capacity %[[CAP]] experts 8 blocks 1 n 128 k 64
// CHECK: moert.experts_linear %[[CTX]], %[[W3:.*]] : !moert.view<f32, 65536> in %[[BUF]] : !moert.view<f32, 8192> -> %[[U]] : {{.*}} n 128 k 64
// CHECK: %[[EF:.*]] = arith.constant 1024 : i64
// CHECK: %[[COUNT:.*]] = arith.muli %[[CAP]], %[[EF]] : i64
// CHECK: moert.activation %[[CTX]], silu %[[H]] -> %[[H]] count %[[COUNT]]
// CHECK: moert.multiply %[[CTX]], %[[H]], %[[U]] -> %[[H]] count %[[COUNT]]
// CHECK: moert.experts_linear %[[CTX]], %{{.*}} : !moert.view<f32, 65536> in %[[H]] : !moert.view<f32, 16384> -> %[[OUT]] : !moert.view<f32, 8192> rows %[[COUNTS]] : !moert.view<i32, 8> capacity %[[CAP]] experts 8 blocks 1 n 64 k 128
// CHECK: %[[Y:.*]] = moert.view %[[STATE]][197120] : !moert.buffer<985536> -> !moert.view<f32, 1024>
// CHECK: moert.combine %[[CTX]], %[[OUT]], {{.*}} -> %[[Y]] tokens %[[S]] capacity %[[CAP]] hidden 64 top_k 2 experts 8
// CHECK: %[[N:.*]] = arith.muli %[[S]], %{{.*}} : i64
// CHECK: moert.add %[[CTX]], %[[X]], %[[Y]] -> %[[X]] count %[[N]]
// CHECK-NEXT: }
// CHECK-NEXT: return
module {
func.func @mixtral(%x: tensor<?x64xf32>,
    %wg: tensor<8x64xf32> {moe.weight = "model.layers.0.block_sparse_moe.gate.weight"},
    %w1: tensor<8x128x64xf32> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w1.weight"},
    %w3: tensor<8x128x64xf32> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w3.weight"},
    %w2: tensor<8x64x128xf32> {moe.weight = "model.layers.0.block_sparse_moe.experts.{e}.w2.weight"}) -> tensor<?x64xf32> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
    %l = moe.router %h, %wg : tensor<?x64xf32>, tensor<8x64xf32>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<8x?x64xf32>
    %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<8x?x64xf32>
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xf32>, tensor<?x2xi32>
    moe.yield %o : tensor<?x64xf32>
  }
  return %y : tensor<?x64xf32>
}
}

// -----

// The same layer in bf16, unfused: the hidden act(gate) * up is stored in
// bf16 (a third scratch view, after the fp32 gate and up and below the
// dispatched rows) before the bf16 down GEMM reads it, as moert.experts
// stores it.
// CHECK-LABEL: func.func @mixtral_bf16_step(
// CHECK: moert.view %{{.*}}[279040] : !moert.buffer<591296> -> !moert.view<bf16, 8192>
// CHECK-NEXT: moert.dispatch
// CHECK: %[[H:.*]] = moert.view %{{.*}}[98560] : !moert.buffer<591296> -> !moert.view<f32, 16384>
// CHECK: %[[U:.*]] = moert.view %{{.*}}[114944] : !moert.buffer<591296> -> !moert.view<f32, 16384>
// CHECK: %[[ACT:.*]] = moert.view %{{.*}}[262656] : !moert.buffer<591296> -> !moert.view<bf16, 16384>
// CHECK: moert.activation %{{.*}}, silu %[[H]] -> %[[H]]
// CHECK: moert.multiply %{{.*}}, %[[H]], %[[U]] -> %[[ACT]] count %{{.*}} : !moert.view<f32, 16384>, !moert.view<f32, 16384> -> !moert.view<bf16, 16384>
// CHECK: moert.experts_linear %{{.*}}, %{{.*}} : !moert.view<bf16, 65536> in %[[ACT]] : !moert.view<bf16, 16384> -> %{{.*}} : !moert.view<bf16, 8192> {{.*}} n 64 k 128
module {
func.func @mixtral_bf16(%x: tensor<?x64xbf16>,
    %wg: tensor<8x64xbf16> {moe.weight = "l0.gate.weight"},
    %w1: tensor<8x128x64xbf16> {moe.weight = "l0.experts.{e}.w1.weight"},
    %w3: tensor<8x128x64xbf16> {moe.weight = "l0.experts.{e}.w3.weight"},
    %w2: tensor<8x64x128xbf16> {moe.weight = "l0.experts.{e}.w2.weight"}) -> tensor<?x64xbf16> {
  %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
    %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<8x64xbf16>
    %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x8xf32>
    %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<8x?x64xbf16>
    %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<8x?x64xbf16>, tensor<8x128x64xbf16>, tensor<8x128x64xbf16>, tensor<8x64x128xbf16>) -> tensor<8x?x64xbf16>
    %o = moe.combine %e, %ids, %s, %w : tensor<8x?x64xbf16>, tensor<?x2xi32>
    moe.yield %o : tensor<?x64xbf16>
  }
  return %y : tensor<?x64xbf16>
}
}

// -----

// PR-MoE residual layer in bf16 with capacity: top-1 over 4 experts with
// capacity_factor 1 gives C = ceil(1 * 16 / 4) = 4 rows per expert, so the
// expert buffer holds 4 x 4 x 32 bf16 values; the plain (fc1/fc2) FFNs keep
// their biases and the coefficient mix reads the layer input.
// CHECK: buffer plan @prmoe_step: tokens 16
// CHECK-LABEL: func.func @prmoe_step(
// CHECK-SAME: !moert.view<bf16, 512>
// CHECK: moert.gate_slots {{.*}} <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 1>
// CHECK: moert.dispatch {{.*}} -> !moert.view<bf16, 512>
// CHECK: moert.experts %{{.*}}, gelu %{{.*}} : !moert.view<bf16, 512> up %{{.*}} : !moert.view<bf16, 8192> bias %{{.*}} : !moert.view<bf16, 256> down %{{.*}} : !moert.view<bf16, 8192> bias %{{.*}} : !moert.view<bf16, 128> -> %{{.*}} : !moert.view<bf16, 512>
// CHECK: moert.dense_ffn %{{.*}}, gelu %{{.*}} : !moert.view<bf16, 512> up
// CHECK: moert.residual_mix {{.*}} coefficient({{.*}} bias {{.*}}) -> %{{.*}} tokens %{{.*}} hidden 32
// CHECK: moert.add
module {
  func.func @prmoe(%x: tensor<?x32xbf16>,
      %wg: tensor<4x32xbf16> {moe.weight = "l0.gate.weight"},
      %w1: tensor<4x64x32xbf16> {moe.weight = "l0.experts.{e}.fc1.weight"},
      %b1: tensor<4x64xbf16> {moe.weight = "l0.experts.{e}.fc1.bias"},
      %w2: tensor<4x32x64xbf16> {moe.weight = "l0.experts.{e}.fc2.weight"},
      %b2: tensor<4x32xbf16> {moe.weight = "l0.experts.{e}.fc2.bias"},
      %m1: tensor<64x32xbf16> {moe.weight = "l0.mlp.fc1.weight"},
      %m2: tensor<32x64xbf16> {moe.weight = "l0.mlp.fc2.weight"},
      %wc: tensor<2x32xbf16> {moe.weight = "l0.coefficient.weight"},
      %bc: tensor<2xbf16> {moe.weight = "l0.coefficient.bias"}) -> tensor<?x32xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x32xbf16> {
      %l = moe.router %h, %wg : tensor<?x32xbf16>, tensor<4x32xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 1, capacity_factor = 1.0, min_capacity = 1> : tensor<?x4xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x32xbf16>, tensor<?x1xi32> -> tensor<4x?x32xbf16>
      %e = moe.experts gelu %b up %w1 bias %b1 down %w2 bias %b2 : (tensor<4x?x32xbf16>, tensor<4x64x32xbf16>, tensor<4x64xbf16>, tensor<4x32x64xbf16>, tensor<4x32xbf16>) -> tensor<4x?x32xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<4x?x32xbf16>, tensor<?x1xi32>
      %d = moe.dense_ffn gelu %h up %m1 down %m2 : (tensor<?x32xbf16>, tensor<64x32xbf16>, tensor<32x64xbf16>) -> tensor<?x32xbf16>
      %r = moe.residual_mix %o, %d coefficient(%h, %wc, %bc : tensor<?x32xbf16>, tensor<2x32xbf16>, tensor<2xbf16>) : tensor<?x32xbf16>
      moe.yield %r : tensor<?x32xbf16>
    }
    return %y : tensor<?x32xbf16>
  }
}

// -----

// Qwen2-MoE shared expert with its sigmoid gate, two layers in a row: the
// second layer updates the same input view in place.
// CHECK-LABEL: func.func @qwen2_step(
// CHECK-SAME: %[[X:[^:]*]]: !moert.view<f32, 1024>)
// CHECK: moert.dense_ffn %{{.*}}, silu %[[X]]
// CHECK: moert.shared_add %{{.*}}, %{{.*}}, %{{.*}} gated(%[[X]], %{{.*}}) -> %{{.*}} tokens %{{.*}} hidden 64
// CHECK: moert.add %{{.*}}, %[[X]], %{{.*}} -> %[[X]]
// CHECK: moert.dense_ffn %{{.*}}, silu %[[X]]
// CHECK: moert.add %{{.*}}, %[[X]], %{{.*}} -> %[[X]]
module {
  func.func @qwen2(%x: tensor<?x64xf32>,
      %wg: tensor<4x64xf32> {moe.weight = "l0.gate.weight"},
      %g: tensor<4x32x64xf32> {moe.weight = "l0.experts.{e}.gate_proj.weight"},
      %u: tensor<4x32x64xf32> {moe.weight = "l0.experts.{e}.up_proj.weight"},
      %d: tensor<4x64x32xf32> {moe.weight = "l0.experts.{e}.down_proj.weight"},
      %sg: tensor<32x64xf32> {moe.weight = "l0.shared_expert.gate_proj.weight"},
      %su: tensor<32x64xf32> {moe.weight = "l0.shared_expert.up_proj.weight"},
      %sd: tensor<64x32xf32> {moe.weight = "l0.shared_expert.down_proj.weight"},
      %wsg: tensor<1x64xf32> {moe.weight = "l0.shared_expert_gate.weight"},
      %mg: tensor<32x64xf32> {moe.weight = "l1.mlp.gate_proj.weight"},
      %mu: tensor<32x64xf32> {moe.weight = "l1.mlp.up_proj.weight"},
      %md: tensor<64x32xf32> {moe.weight = "l1.mlp.down_proj.weight"}) -> tensor<?x64xf32> {
    %y = moe.layer 0 (%h = %x) : tensor<?x64xf32> {
      %l = moe.router %h, %wg : tensor<?x64xf32>, tensor<4x64xf32>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2> : tensor<?x4xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xf32>, tensor<?x2xi32> -> tensor<4x?x64xf32>
      %e = moe.experts silu %b gate %g up %u down %d : (tensor<4x?x64xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x?x64xf32>
      %o = moe.combine %e, %ids, %s, %w : tensor<4x?x64xf32>, tensor<?x2xi32>
      %sh = moe.dense_ffn silu %h gate %sg up %su down %sd : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
      %r = moe.shared_add %o, %sh gated(%h, %wsg : tensor<?x64xf32>, tensor<1x64xf32>) : tensor<?x64xf32>
      moe.yield %r : tensor<?x64xf32>
    }
    %z = moe.layer 1 (%h = %y) : tensor<?x64xf32> {
      %m = moe.dense_ffn silu %h gate %mg up %mu down %md : (tensor<?x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<?x64xf32>
      moe.yield %m : tensor<?x64xf32>
    }
    return %z : tensor<?x64xf32>
  }
}
