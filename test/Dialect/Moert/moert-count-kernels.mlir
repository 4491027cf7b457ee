// RUN: moe-opt %s --moert-count-kernels -o /dev/null | FileCheck %s

// A combine then the layer's residual add, unfused, against the same layer
// with one fused combine updating x in place. Bytes are whole views:
// combine reads y (8 x 4 x 64 f32 = 32768), ids, slots, weights (128 each)
// and writes out (4096); add reads x and out (in place on x: x counts as
// read and written). Views, statistics and other steps launch nothing.
// The counts come from the ops' declarations: kernel family and effects.

// CHECK: kernels @unfused_step tokens 16
// CHECK-NEXT: layer 0: launches 2 read 41344 written 8192
// CHECK-NEXT: total: launches 2 read 41344 written 8192
// CHECK-NEXT: kernel moert.combine: launches 1 read 33152 written 4096
// CHECK-NEXT: kernel moert.add: launches 1 read 8192 written 4096
// CHECK-NEXT: family combine: launches 2 read 41344 written 8192
// CHECK-NEXT: kernels @fused_step tokens 16
// CHECK-NEXT: layer 0: launches 1 read 37248 written 4096
// CHECK-NEXT: total: launches 1 read 37248 written 4096
// CHECK-NEXT: kernel moert.fused_combine: launches 1 read 37248 written 4096
// CHECK-NEXT: family combine: launches 1 read 37248 written 4096
// CHECK-NEXT: kernels @gate_stages_step tokens 16
// CHECK-NEXT: layer 1: launches 4 read 1536 written 1056
// CHECK-NEXT: total: launches 4 read 1536 written 1056
// CHECK-NEXT: kernel moert.gate_scores: launches 1 read 512 written 512
// CHECK-NEXT: kernel moert.gate_select: launches 1 read 512 written 256
// CHECK-NEXT: kernel moert.gate_slots: launches 1 read 256 written 160
// CHECK-NEXT: kernel moert.gate_normalize: launches 1 read 256 written 128
// CHECK-NEXT: family gate: launches 4 read 1536 written 1056
// CHECK-NEXT: kernels @gate_fused_step tokens 16
// CHECK-NEXT: layer 1: launches 1 read 512 written 416
// CHECK-NEXT: total: launches 1 read 512 written 416
// CHECK-NEXT: kernel moert.gate: launches 1 read 512 written 416
// CHECK-NEXT: family gate: launches 1 read 512 written 416
// CHECK-NOT: kernels
module attributes {moert.max_tokens = 16 : i64} {
func.func @unfused_step(%ctx: !moert.context, %buf: !moert.buffer<65536>, %stats: !moert.stats, %s: i64, %x: !moert.view<f32, 1024>) attributes {moert.entry = "step"} {
  moert.layer %stats index 0 {
    %cap = arith.constant 4 : i64
    %ids = moert.view %buf[0] : !moert.buffer<65536> -> !moert.view<i32, 32>
    %w = moert.view %buf[32] : !moert.buffer<65536> -> !moert.view<f32, 32>
    %slots = moert.view %buf[64] : !moert.buffer<65536> -> !moert.view<i32, 32>
    %counts = moert.view %buf[96] : !moert.buffer<65536> -> !moert.view<i32, 8>
    %e = moert.view %buf[128] : !moert.buffer<65536> -> !moert.view<f32, 8192>
    %y = moert.view %buf[8320] : !moert.buffer<65536> -> !moert.view<f32, 1024>
    moert.record_drops %ctx, %stats layer 0 counts %counts tokens %s top_k 2 experts 8 : !moert.view<i32, 8>
    moert.combine %ctx, %e, %ids, %slots, %w -> %y tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
    moert.add %ctx, %x, %y -> %x count %s : !moert.view<f32, 1024>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  }
  return
}
func.func @fused_step(%ctx: !moert.context, %buf: !moert.buffer<65536>, %stats: !moert.stats, %s: i64, %x: !moert.view<f32, 1024>) attributes {moert.entry = "step"} {
  moert.layer %stats index 0 {
    %cap = arith.constant 4 : i64
    %ids = moert.view %buf[0] : !moert.buffer<65536> -> !moert.view<i32, 32>
    %w = moert.view %buf[32] : !moert.buffer<65536> -> !moert.view<f32, 32>
    %slots = moert.view %buf[64] : !moert.buffer<65536> -> !moert.view<i32, 32>
    %e = moert.view %buf[128] : !moert.buffer<65536> -> !moert.view<f32, 8192>
    moert.fused_combine %ctx, %e, %ids, %slots, %w addend(%x : !moert.view<f32, 1024>) -> %x tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
  }
  return
}
// The gate's stages: scores (read logits 512, write 512), select (read
// scores 512, write ids and weights 256), slots (read 256, write slots 128
// and counts 32), normalize (read slots and the weights it updates 256,
// write 128); the fused gate reads the logits and writes 416.
func.func @gate_stages_step(%ctx: !moert.context, %buf: !moert.buffer<65536>, %stats: !moert.stats, %s: i64, %x: !moert.view<f32, 1024>) attributes {moert.entry = "step"} {
  moert.layer %stats index 1 {
    %logits = moert.view %buf[0] : !moert.buffer<65536> -> !moert.view<f32, 128>
    %scores = moert.view %buf[128] : !moert.buffer<65536> -> !moert.view<f32, 128>
    %ids = moert.view %buf[256] : !moert.buffer<65536> -> !moert.view<i32, 32>
    %w = moert.view %buf[288] : !moert.buffer<65536> -> !moert.view<f32, 32>
    %slots = moert.view %buf[320] : !moert.buffer<65536> -> !moert.view<i32, 32>
    %counts = moert.view %buf[352] : !moert.buffer<65536> -> !moert.view<i32, 8>
    moert.gate_scores %ctx, %logits -> %scores tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<f32, 128> -> !moert.view<f32, 128>
    moert.gate_select %ctx, %scores -> %ids, %w tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>
    %cap = moert.gate_slots %ctx, %ids, %w -> %slots, %counts tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<i32, 32>, !moert.view<i32, 8>
    moert.gate_normalize %ctx, %slots -> %w tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<i32, 32> -> !moert.view<f32, 32>
  }
  return
}
func.func @gate_fused_step(%ctx: !moert.context, %buf: !moert.buffer<65536>, %stats: !moert.stats, %s: i64, %x: !moert.view<f32, 1024>) attributes {moert.entry = "step"} {
  moert.layer %stats index 1 {
    %logits = moert.view %buf[0] : !moert.buffer<65536> -> !moert.view<f32, 128>
    %ids = moert.view %buf[256] : !moert.buffer<65536> -> !moert.view<i32, 32>
    %w = moert.view %buf[288] : !moert.buffer<65536> -> !moert.view<f32, 32>
    %slots = moert.view %buf[320] : !moert.buffer<65536> -> !moert.view<i32, 32>
    %counts = moert.view %buf[352] : !moert.buffer<65536> -> !moert.view<i32, 8>
    %cap = moert.gate %ctx, %logits -> %ids, %w, %slots, %counts tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
  }
  return
}
func.func @not_a_step(%ctx: !moert.context, %x: !moert.view<f32, 1024>) {
  %s = arith.constant 16 : i64
  moert.add %ctx, %x, %x -> %x count %s : !moert.view<f32, 1024>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  return
}
}
