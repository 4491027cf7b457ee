// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --verify-roundtrip | FileCheck %s

// Every moert op in its custom form; a single-rank Mixtral-style layer with
// 16 tokens at most (hidden 64, ffn 128, 8 experts, top-2) plus the ops the
// other families and expert parallelism need.

// CHECK-LABEL: func.func @layer
func.func @layer(%ctx: !moert.context, %weights: !moert.weights, %s: i64) {
  // CHECK: %[[BUF:.*]] = moert.alloc %{{.*}} : !moert.buffer<1048576>
  %buf = moert.alloc %ctx : !moert.buffer<1048576>
  // CHECK: moert.view %[[BUF]][0] : !moert.buffer<1048576> -> !moert.view<f32, 1024>
  %x = moert.view %buf[0] : !moert.buffer<1048576> -> !moert.view<f32, 1024>
  %wg = moert.view %buf[1024] : !moert.buffer<1048576> -> !moert.view<f32, 512>
  %logits = moert.view %buf[1536] : !moert.buffer<1048576> -> !moert.view<f32, 128>
  %ids = moert.view %buf[1664] : !moert.buffer<1048576> -> !moert.view<i32, 32>
  %w = moert.view %buf[1696] : !moert.buffer<1048576> -> !moert.view<f32, 32>
  %slots = moert.view %buf[1728] : !moert.buffer<1048576> -> !moert.view<i32, 32>
  %counts = moert.view %buf[1760] : !moert.buffer<1048576> -> !moert.view<i32, 8>
  %ebuf = moert.view %buf[2048] : !moert.buffer<1048576> -> !moert.view<f32, 8192>
  %eout = moert.view %buf[10240] : !moert.buffer<1048576> -> !moert.view<f32, 8192>
  %w1 = moert.view %buf[18432] : !moert.buffer<1048576> -> !moert.view<f32, 65536>
  %w3 = moert.view %buf[83968] : !moert.buffer<1048576> -> !moert.view<f32, 65536>
  %w2 = moert.view %buf[149504] : !moert.buffer<1048576> -> !moert.view<f32, 65536>
  %y = moert.view %buf[215040] : !moert.buffer<1048576> -> !moert.view<f32, 1024>
  %scores = moert.view %buf[216064] : !moert.buffer<1048576> -> !moert.view<f32, 128>

  // CHECK: moert.load_weight %{{.*}}, %{{.*}} "model.layers.0.block_sparse_moe.gate.weight" shape [8, 64] begin [0, 0] end [0, 0] -> %{{.*}} : !moert.view<f32, 512>
  moert.load_weight %ctx, %weights "model.layers.0.block_sparse_moe.gate.weight" shape [8, 64] begin [0, 0] end [0, 0] -> %wg : !moert.view<f32, 512>
  // CHECK: moert.load_weight %{{.*}}, %{{.*}} "model.layers.0.block_sparse_moe.experts.{e}.w1.weight" experts [0, 8) shape [128, 64] begin [0, 0] end [0, 0] -> %{{.*}} : !moert.view<f32, 65536>
  moert.load_weight %ctx, %weights "model.layers.0.block_sparse_moe.experts.{e}.w1.weight" experts [0, 8) shape [128, 64] begin [0, 0] end [0, 0] -> %w1 : !moert.view<f32, 65536>
  moert.load_weight %ctx, %weights "model.layers.0.block_sparse_moe.experts.{e}.w3.weight" experts [0, 8) shape [128, 64] begin [0, 0] end [0, 0] -> %w3 : !moert.view<f32, 65536>
  moert.load_weight %ctx, %weights "model.layers.0.block_sparse_moe.experts.{e}.w2.weight" experts [0, 8) shape [64, 128] begin [0, 0] end [0, 0] -> %w2 : !moert.view<f32, 65536>
  // Gate and up packed into one [8, 2F, H] buffer at load.
  // CHECK: moert.load_weight {{.*}} "model.layers.0.block_sparse_moe.experts.{e}.w3.weight" {{.*}} -> %{{.*}} stride 16384 : !moert.view<f32, 122880>
  %packed = moert.view %buf[18432] : !moert.buffer<1048576> -> !moert.view<f32, 131072>
  %packed_up = moert.view %buf[26624] : !moert.buffer<1048576> -> !moert.view<f32, 122880>
  moert.load_weight %ctx, %weights "model.layers.0.block_sparse_moe.experts.{e}.w1.weight" experts [0, 8) shape [128, 64] begin [0, 0] end [0, 0] -> %packed stride 16384 : !moert.view<f32, 131072>
  moert.load_weight %ctx, %weights "model.layers.0.block_sparse_moe.experts.{e}.w3.weight" experts [0, 8) shape [128, 64] begin [0, 0] end [0, 0] -> %packed_up stride 16384 : !moert.view<f32, 122880>
  // Gate and up straight out of one fused [8, 2F, H] tensor (Granite).
  // CHECK: moert.load_fused_weight %{{.*}}, %{{.*}} "model.layers.0.block_sparse_moe.input_linear.weight" experts [0, 8) fused [8, 256, 64] offset 8192 expert_stride 16384 strides [64, 1] shape [128, 64] begin [0, 0] end [0, 0] -> %{{.*}} stride 16384 : !moert.view<f32, 122880>
  moert.load_fused_weight %ctx, %weights "model.layers.0.block_sparse_moe.input_linear.weight" experts [0, 8) fused [8, 256, 64] offset 0 expert_stride 16384 strides [64, 1] shape [128, 64] begin [0, 0] end [0, 0] -> %packed stride 16384 : !moert.view<f32, 131072>
  moert.load_fused_weight %ctx, %weights "model.layers.0.block_sparse_moe.input_linear.weight" experts [0, 8) fused [8, 256, 64] offset 8192 expert_stride 16384 strides [64, 1] shape [128, 64] begin [0, 0] end [0, 0] -> %packed_up stride 16384 : !moert.view<f32, 122880>

  // CHECK: moert.router %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64 experts 8 : !moert.view<f32, 1024>, !moert.view<f32, 512> -> !moert.view<f32, 128>
  moert.router %ctx, %x, %wg -> %logits tokens %s hidden 64 experts 8 : !moert.view<f32, 1024>, !moert.view<f32, 512> -> !moert.view<f32, 128>
  // CHECK: %[[CAP:.*]] = moert.gate %{{.*}} tokens %{{.*}} experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
  %cap = moert.gate %ctx, %logits -> %ids, %w, %slots, %counts tokens %s experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
  // CHECK: moert.gate {{.*}} <scoring = softmax, top_k = 2, normalize = selected> static_capacity 16 :
  %static = moert.gate %ctx, %logits -> %ids, %w, %slots, %counts tokens %s experts 8 <scoring = softmax, top_k = 2, normalize = selected> static_capacity 16 : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
  // The same gate as one call per stage.
  // CHECK: moert.gate_scores %{{.*}}, %{{.*}} -> %[[SC:.*]] tokens %{{.*}} experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<f32, 128> -> !moert.view<f32, 128>
  moert.gate_scores %ctx, %logits -> %scores tokens %s experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<f32, 128> -> !moert.view<f32, 128>
  // CHECK: moert.gate_select %{{.*}}, %[[SC]] -> %{{.*}}, %{{.*}} tokens %{{.*}} experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>
  moert.gate_select %ctx, %scores -> %ids, %w tokens %s experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>
  // CHECK: %{{.*}} = moert.gate_slots %{{.*}} -> %{{.*}}, %{{.*}} tokens %{{.*}} experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<i32, 32>, !moert.view<i32, 8>
  %cap2 = moert.gate_slots %ctx, %ids, %w -> %slots, %counts tokens %s experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<i32, 32>, !moert.view<i32, 8>
  // CHECK: moert.gate_normalize %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<i32, 32> -> !moert.view<f32, 32>
  moert.gate_normalize %ctx, %slots -> %w tokens %s experts 8 <scoring = softmax, top_k = 2, normalize = selected> : !moert.view<i32, 32> -> !moert.view<f32, 32>
  // CHECK: moert.dispatch {{.*}} tokens %{{.*}} capacity %[[CAP]] hidden 64 top_k 2 experts 8
  moert.dispatch %ctx, %x, %ids, %slots -> %ebuf tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 1024>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8192>
  // CHECK: moert.experts %{{.*}}, silu %{{.*}} : !moert.view<f32, 8192> gate %{{.*}} : !moert.view<f32, 65536> up %{{.*}} : !moert.view<f32, 65536> down %{{.*}} : !moert.view<f32, 65536> -> %{{.*}} : !moert.view<f32, 8192> rows %{{.*}} : !moert.view<i32, 8> capacity %[[CAP]] experts 8 blocks 1 hidden 64 ffn 128
  moert.experts %ctx, silu %ebuf : !moert.view<f32, 8192> gate %w1 : !moert.view<f32, 65536> up %w3 : !moert.view<f32, 65536> down %w2 : !moert.view<f32, 65536> -> %eout : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 hidden 64 ffn 128
  // The same gated FFN as stage calls on fp32 [E, C, F] intermediates.
  %h = moert.view %buf[217088] : !moert.buffer<1048576> -> !moert.view<f32, 16384>
  %u = moert.view %buf[233472] : !moert.buffer<1048576> -> !moert.view<f32, 16384>
  %n = arith.constant 16384 : i64
  // CHECK: moert.experts_linear %{{.*}}, %{{.*}} : !moert.view<f32, 65536> in %{{.*}} : !moert.view<f32, 8192> -> %[[H:.*]] : !moert.view<f32, 16384> rows %{{.*}} : !moert.view<i32, 8> capacity %[[CAP]] experts 8 blocks 1 n 128 k 64
  moert.experts_linear %ctx, %w1 : !moert.view<f32, 65536> in %ebuf : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 n 128 k 64
  moert.experts_linear %ctx, %w3 : !moert.view<f32, 65536> in %ebuf : !moert.view<f32, 8192> -> %u : !moert.view<f32, 16384> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 n 128 k 64
  // CHECK: moert.activation %{{.*}}, silu %[[H]] -> %[[H]] count %{{.*}} : !moert.view<f32, 16384> -> !moert.view<f32, 16384>
  moert.activation %ctx, silu %h -> %h count %n : !moert.view<f32, 16384> -> !moert.view<f32, 16384>
  // CHECK: moert.multiply %{{.*}}, %[[H]], %{{.*}} -> %[[H]] count %{{.*}} : !moert.view<f32, 16384>, !moert.view<f32, 16384> -> !moert.view<f32, 16384>
  moert.multiply %ctx, %h, %u -> %h count %n : !moert.view<f32, 16384>, !moert.view<f32, 16384> -> !moert.view<f32, 16384>
  // gpt-oss's stages: a per-expert bias [E, n] and the clamped SwiGLU.
  // CHECK: moert.experts_bias_add %{{.*}}, %{{.*}} : !moert.view<f32, 16384> in %[[H]] : !moert.view<f32, 16384> -> %[[H]] : !moert.view<f32, 16384> rows %{{.*}} : !moert.view<i32, 8> capacity %[[CAP]] experts 8 blocks 1 n 128
  moert.experts_bias_add %ctx, %u : !moert.view<f32, 16384> in %h : !moert.view<f32, 16384> -> %h : !moert.view<f32, 16384> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 n 128
  // CHECK: moert.swiglu_clamped %{{.*}}, %[[H]], %{{.*}} -> %[[H]] count %{{.*}} alpha 1.702000e+00 limit 7.000000e+00 : !moert.view<f32, 16384>, !moert.view<f32, 16384> -> !moert.view<f32, 16384>
  moert.swiglu_clamped %ctx, %h, %u -> %h count %n alpha 1.702 limit 7.0 : !moert.view<f32, 16384>, !moert.view<f32, 16384> -> !moert.view<f32, 16384>
  moert.experts_linear %ctx, %w2 : !moert.view<f32, 65536> in %h : !moert.view<f32, 16384> -> %eout : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 n 64 k 128
  // fp8 block-quantized weights (block 128 x 32: F 128 one row block, H 64
  // two column blocks; down [64, 128] one row block, four column blocks).
  %q8 = moert.view %buf[0] : !moert.buffer<1048576> -> !moert.view<f8E4M3FN, 65536>
  %qs = moert.view %buf[16384] : !moert.buffer<1048576> -> !moert.view<f32, 32>
  // CHECK: moert.quantized_experts %{{.*}}, silu %{{.*}} : !moert.view<f32, 8192> gate %{{.*}} : !moert.view<f8E4M3FN, 65536> scales %{{.*}} : !moert.view<f32, 32> up %{{.*}} : !moert.view<f8E4M3FN, 65536> scales %{{.*}} : !moert.view<f32, 32> down %{{.*}} : !moert.view<f8E4M3FN, 65536> scales %{{.*}} : !moert.view<f32, 32> -> %{{.*}} : !moert.view<f32, 8192> rows %{{.*}} : !moert.view<i32, 8> capacity %[[CAP]] experts 8 blocks 1 hidden 64 ffn 128 fp8_e4m3_block block_rows 128 block_cols 32{{$}}
  moert.quantized_experts %ctx, silu %ebuf : !moert.view<f32, 8192> gate %q8 : !moert.view<f8E4M3FN, 65536> scales %qs : !moert.view<f32, 32> up %q8 : !moert.view<f8E4M3FN, 65536> scales %qs : !moert.view<f32, 32> down %q8 : !moert.view<f8E4M3FN, 65536> scales %qs : !moert.view<f32, 32> -> %eout : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 hidden 64 ffn 128 fp8_e4m3_block block_rows 128 block_cols 32
  // MXFP4: ui8 e2m1 pairs [8, F or H, cols / 2] and e8m0 scales [8, rows, cols / 32].
  %mx = moert.view %buf[0] : !moert.buffer<1048576> -> !moert.view<ui8, 32768>
  %mxs = moert.view %buf[0] : !moert.buffer<1048576> -> !moert.view<ui8, 2048>
  // CHECK: moert.quantized_experts {{.*}} gate %{{.*}} : !moert.view<ui8, 32768> scales %{{.*}} : !moert.view<ui8, 2048> {{.*}} hidden 64 ffn 128 mxfp4 block_rows 1 block_cols 32{{$}}
  moert.quantized_experts %ctx, silu %ebuf : !moert.view<f32, 8192> gate %mx : !moert.view<ui8, 32768> scales %mxs : !moert.view<ui8, 2048> up %mx : !moert.view<ui8, 32768> scales %mxs : !moert.view<ui8, 2048> down %mx : !moert.view<ui8, 32768> scales %mxs : !moert.view<ui8, 2048> -> %eout : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 hidden 64 ffn 128 mxfp4 block_rows 1 block_cols 32
  // One quantized GEMM stage (gpt-oss's staged experts): gate [8, 128, 64].
  // CHECK: moert.quantized_experts_linear %{{.*}}, mxfp4 block_rows 1 block_cols 32 %{{.*}} : !moert.view<ui8, 32768> scales %{{.*}} : !moert.view<ui8, 2048> in %{{.*}} : !moert.view<f32, 8192> -> %[[H]] : !moert.view<f32, 16384> rows %{{.*}} : !moert.view<i32, 8> capacity %[[CAP]] experts 8 blocks 1 n 128 k 64{{$}}
  moert.quantized_experts_linear %ctx, mxfp4 block_rows 1 block_cols 32 %mx : !moert.view<ui8, 32768> scales %mxs : !moert.view<ui8, 2048> in %ebuf : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 n 128 k 64
  // The fused form on packed [E, 2F, H] weights (w1 and w3 adjacent), with
  // and without a folded shared expert (gate_up [2*64, 64], down [64, 64]).
  %gate_up = moert.view %buf[18432] : !moert.buffer<1048576> -> !moert.view<f32, 131072>
  // CHECK: moert.fused_experts %{{.*}}, silu %{{.*}} : !moert.view<f32, 8192> gate_up %{{.*}} : !moert.view<f32, 131072> down %{{.*}} : !moert.view<f32, 65536> -> %{{.*}} : !moert.view<f32, 8192> rows %{{.*}} : !moert.view<i32, 8> capacity %[[CAP]] experts 8 blocks 1 hidden 64 ffn 128{{$}}
  moert.fused_experts %ctx, silu %ebuf : !moert.view<f32, 8192> gate_up %gate_up : !moert.view<f32, 131072> down %w2 : !moert.view<f32, 65536> -> %eout : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 hidden 64 ffn 128
  // CHECK: moert.fused_experts {{.*}} ffn 128 shared(%{{.*}} : !moert.view<f32, 1024> gate_up %{{.*}} : !moert.view<f32, 8192> down %{{.*}} : !moert.view<f32, 4096> -> %{{.*}} : !moert.view<f32, 1024> tokens %{{.*}} ffn 64)
  %sgu = moert.view %buf[18432] : !moert.buffer<1048576> -> !moert.view<f32, 8192>
  %sd = moert.view %buf[26624] : !moert.buffer<1048576> -> !moert.view<f32, 4096>
  moert.fused_experts %ctx, silu %ebuf : !moert.view<f32, 8192> gate_up %gate_up : !moert.view<f32, 131072> down %w2 : !moert.view<f32, 65536> -> %eout : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 hidden 64 ffn 128 shared(%x : !moert.view<f32, 1024> gate_up %sgu : !moert.view<f32, 8192> down %sd : !moert.view<f32, 4096> -> %y : !moert.view<f32, 1024> tokens %s ffn 64)
  // CHECK: moert.combine {{.*}} addend %{{.*}} -> %{{.*}} tokens
  moert.combine %ctx, %eout, %ids, %slots, %w addend %x -> %y tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  // Llama 4's input-weighted rows, then the unweighted sums (an addend
  // without weights stays unambiguous).
  // CHECK: moert.dispatch %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^ ]*}} weights %{{.*}} : !moert.view<f32, 32> -> %{{.*}} tokens
  moert.dispatch %ctx, %x, %ids, %slots weights %w : !moert.view<f32, 32> -> %ebuf tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 1024>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8192>
  // CHECK: moert.combine %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^ ]*}} addend %{{.*}} : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32> unweighted, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  moert.combine %ctx, %eout, %ids, %slots addend %x -> %y tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32> unweighted, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  // CHECK: moert.fused_combine %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^ ]*}} shared(%{{.*}} : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 1024>
  moert.fused_combine %ctx, %eout, %ids, %slots shared(%y : !moert.view<f32, 1024>) -> %x tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 1024>
  // CHECK: moert.fused_combine {{.*}} shared(%{{.*}} : !moert.view<f32, 1024>) addend(%{{.*}} : !moert.view<f32, 1024>) -> %{{.*}} tokens %{{.*}} capacity %[[CAP]] hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
  moert.fused_combine %ctx, %eout, %ids, %slots, %w shared(%y : !moert.view<f32, 1024>) addend(%x : !moert.view<f32, 1024>) -> %x tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
  // CHECK: moert.add %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} count %{{.*}}
  moert.add %ctx, %x, %y -> %x count %s : !moert.view<f32, 1024>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  return
}

// CHECK-LABEL: func.func @families
func.func @families(%ctx: !moert.context, %s: i64, %x: !moert.view<bf16, 1024>,
                    %logits: !moert.view<f32, 1024>, %bias: !moert.view<f32, 64>,
                    %ids: !moert.view<i32, 128>, %w: !moert.view<f32, 128>,
                    %slots: !moert.view<i32, 128>, %counts: !moert.view<i32, 64>,
                    %w1: !moert.view<bf16, 8192>, %b1: !moert.view<bf16, 128>,
                    %w2: !moert.view<bf16, 8192>, %b2: !moert.view<bf16, 64>,
                    %y: !moert.view<bf16, 1024>, %z: !moert.view<bf16, 1024>,
                    %wc: !moert.view<f32, 128>, %bc: !moert.view<f32, 2>,
                    %wsg: !moert.view<bf16, 64>) {
  // CHECK: moert.gate {{.*}} correction %{{.*}} -> {{.*}} experts 64 <scoring = sigmoid, top_k = 8, n_group = 8, topk_group = 4, group_score = top2_sum, normalize = selected, norm_epsilon = 1.0e-20, routed_scaling_factor = 2.5>
  %c = moert.gate %ctx, %logits correction %bias -> %ids, %w, %slots, %counts tokens %s experts 64 <scoring = sigmoid, top_k = 8, n_group = 8, topk_group = 4, group_score = top2_sum, normalize = selected, norm_epsilon = 1.0e-20, routed_scaling_factor = 2.5> : !moert.view<f32, 1024>, !moert.view<f32, 64> -> !moert.view<i32, 128>, !moert.view<f32, 128>, !moert.view<i32, 128>, !moert.view<i32, 64>
  // CHECK: moert.dense_ffn %{{.*}}, gelu %{{.*}} : !moert.view<bf16, 1024> up %{{.*}} : !moert.view<bf16, 8192> bias %{{.*}} : !moert.view<bf16, 128> down %{{.*}} : !moert.view<bf16, 8192> bias %{{.*}} : !moert.view<bf16, 64> -> %{{.*}} : !moert.view<bf16, 1024> tokens %{{.*}} hidden 64 ffn 128
  moert.dense_ffn %ctx, gelu %x : !moert.view<bf16, 1024> up %w1 : !moert.view<bf16, 8192> bias %b1 : !moert.view<bf16, 128> down %w2 : !moert.view<bf16, 8192> bias %b2 : !moert.view<bf16, 64> -> %y : !moert.view<bf16, 1024> tokens %s hidden 64 ffn 128
  // One slice of a tensor-parallel FFN adds the down bias.
  // CHECK: %[[FIRST:.*]] = arith.cmpi
  // CHECK: moert.dense_ffn {{.*}} bias %{{.*}} : !moert.view<bf16, 64> if %[[FIRST]] -> %{{.*}} : !moert.view<bf16, 1024> tokens
  %first = arith.cmpi eq, %s, %s : i64
  moert.dense_ffn %ctx, gelu %x : !moert.view<bf16, 1024> up %w1 : !moert.view<bf16, 8192> bias %b1 : !moert.view<bf16, 128> down %w2 : !moert.view<bf16, 8192> bias %b2 : !moert.view<bf16, 64> if %first -> %y : !moert.view<bf16, 1024> tokens %s hidden 64 ffn 128
  // CHECK: moert.residual_mix %{{.*}}, %{{.*}}, %{{.*}} coefficient(%{{.*}}, %{{.*}} bias %{{.*}}) -> %{{.*}} tokens %{{.*}} hidden 64
  moert.residual_mix %ctx, %y, %z coefficient(%x, %wc bias %bc) -> %z tokens %s hidden 64 : !moert.view<bf16, 1024>, !moert.view<bf16, 1024>, !moert.view<bf16, 1024>, !moert.view<f32, 128>, !moert.view<f32, 2> -> !moert.view<bf16, 1024>
  // CHECK: moert.shared_add %{{.*}}, %{{.*}}, %{{.*}} gated(%{{.*}}, %{{.*}}) -> %{{.*}} tokens %{{.*}} hidden 64
  moert.shared_add %ctx, %y, %z gated(%x, %wsg) -> %y tokens %s hidden 64 : !moert.view<bf16, 1024>, !moert.view<bf16, 1024>, !moert.view<bf16, 1024>, !moert.view<bf16, 64> -> !moert.view<bf16, 1024>
  // CHECK: moert.shared_add %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64 : !moert.view<bf16, 1024>, !moert.view<bf16, 1024> -> !moert.view<bf16, 1024>
  moert.shared_add %ctx, %y, %z -> %y tokens %s hidden 64 : !moert.view<bf16, 1024>, !moert.view<bf16, 1024> -> !moert.view<bf16, 1024>
  // CHECK: moert.rms_norm %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64 epsilon 9.99999997E-7 :
  moert.rms_norm %ctx, %y, %b2 -> %y tokens %s hidden 64 epsilon 1.0e-06 : !moert.view<bf16, 1024>, !moert.view<bf16, 64> -> !moert.view<bf16, 1024>
  return
}

// CHECK-LABEL: func.func @exchange
func.func @exchange(%ctx: !moert.context, %cap: i64, %n: i64,
                    %send: !moert.view<bf16, 8192>, %recv: !moert.view<bf16, 8192>,
                    %part: !moert.view<f32, 1024>,
                    %gathered: !moert.view<f32, 2048>) -> i64 {
  // CHECK: moert.keep_group %{{.*}} {{\[}}[0, 1], [2, 3]] slot 3
  moert.keep_group %ctx [[0, 1], [2, 3]] slot 3
  // CHECK: %[[G:.*]] = moert.group %{{.*}} slot 3
  %g = moert.group %ctx slot 3
  // CHECK: moert.all_to_all %{{.*}}, %[[G]] to_experts hierarchical %{{.*}} -> %{{.*}} experts_local 4 capacity %{{.*}} hidden 64 : !moert.view<bf16, 8192> -> !moert.view<bf16, 8192>
  moert.all_to_all %ctx, %g to_experts hierarchical %send -> %recv experts_local 4 capacity %cap hidden 64 : !moert.view<bf16, 8192> -> !moert.view<bf16, 8192>
  // CHECK: moert.all_to_all %{{.*}}, %[[G]] from_experts flat
  moert.all_to_all %ctx, %g from_experts flat %recv -> %send experts_local 4 capacity %cap hidden 64 : !moert.view<bf16, 8192> -> !moert.view<bf16, 8192>
  // CHECK: moert.all_to_all_sliced %{{.*}}, %[[G]] from_experts flat %{{.*}} -> %{{.*}} experts_local 4 capacity %{{.*}} hidden 64 slices 2 :
  moert.all_to_all_sliced %ctx, %g from_experts flat %recv -> %send experts_local 4 capacity %cap hidden 64 slices 2 : !moert.view<bf16, 8192> -> !moert.view<bf16, 8192>
  // CHECK: moert.all_reduce %{{.*}}, %[[G]] sum %{{.*}} -> %{{.*}} count %{{.*}} : !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  moert.all_reduce %ctx, %g sum %part -> %part count %n : !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  // CHECK: moert.all_gather %{{.*}}, %[[G]] %{{.*}} -> %{{.*}} count %{{.*}} : !moert.view<f32, 1024> -> !moert.view<f32, 2048>
  // CHECK: moert.reduce_scatter %{{.*}}, %[[G]] %{{.*}} -> %{{.*}} count %{{.*}} : !moert.view<bf16, 8192> -> !moert.view<bf16, 8192>
  // CHECK: moert.all_reduce_i64 %{{.*}}, %[[G]] max %{{.*}}
  // CHECK: moert.token_share %{{.*}}, %[[G]] %{{.*}} -> %{{.*}} tokens %{{.*}} hidden 64 : !moert.view<f32, 2048> -> !moert.view<f32, 1024>
  moert.all_gather %ctx, %g %part -> %gathered count %n : !moert.view<f32, 1024> -> !moert.view<f32, 2048>
  moert.reduce_scatter %ctx, %g %send -> %recv count %n : !moert.view<bf16, 8192> -> !moert.view<bf16, 8192>
  %c = moert.all_reduce_i64 %ctx, %g max %cap
  %share = moert.token_share %ctx, %g %gathered -> %part tokens %cap hidden 64 : !moert.view<f32, 2048> -> !moert.view<f32, 1024>
  return %c : i64
}

// A rank's shard: the expert range and the box shifted by runtime offsets;
// a timed layer with its drop record.
// CHECK-LABEL: func.func @shard_and_stats
func.func @shard_and_stats(%ctx: !moert.context, %weights: !moert.weights,
                           %stats: !moert.stats, %s: i64,
                           %w1: !moert.view<f32, 8192>,
                           %counts: !moert.view<i32, 8>) -> i64 {
  // CHECK: %[[R:.*]] = moert.rank %{{.*}}
  %r = moert.rank %ctx
  // CHECK: moert.load_weight %{{.*}}, %{{.*}} "l0.experts.{e}.w1" experts [0, 2) + %[[R]] shape [128, 64] begin [0, 0] end [32, 64] + (%[[R]], %[[R]]) -> %{{.*}} : !moert.view<f32, 8192>
  moert.load_weight %ctx, %weights "l0.experts.{e}.w1" experts [0, 2) + %r shape [128, 64] begin [0, 0] end [32, 64] + (%r, %r) -> %w1 : !moert.view<f32, 8192>
  // CHECK: moert.layer %{{.*}} index 3 {
  // CHECK-NEXT: moert.record_drops %{{.*}}, %{{.*}} layer 3 counts %{{.*}} tokens %{{.*}} top_k 2 experts 8 : !moert.view<i32, 8>
  moert.layer %stats index 3 {
    moert.record_drops %ctx, %stats layer 3 counts %counts tokens %s top_k 2 experts 8 : !moert.view<i32, 8>
  }
  return %r : i64
}
