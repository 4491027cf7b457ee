// RUN: moe-opt %s --moert-count-kernels -o /dev/null | FileCheck %s

// A combine then the layer's residual add, unfused, against the same layer
// with one fused combine updating x in place. Bytes are whole views:
// combine reads y (8 x 4 x 64 f32 = 32768), ids, slots, weights (128 each)
// and writes out (4096); add reads x and out (in place on x: x counts as
// read and written). Views, statistics and other steps launch nothing.

// CHECK: kernels @unfused_step tokens 16
// CHECK-NEXT: layer 0: launches 2 read 41344 written 8192
// CHECK-NEXT: total: launches 2 read 41344 written 8192
// CHECK-NEXT: kernels @fused_step tokens 16
// CHECK-NEXT: layer 0: launches 1 read 37248 written 4096
// CHECK-NEXT: total: launches 1 read 37248 written 4096
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
    moert.add %ctx, %x, %y -> %x tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
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
func.func @not_a_step(%ctx: !moert.context, %x: !moert.view<f32, 1024>) {
  %s = arith.constant 16 : i64
  moert.add %ctx, %x, %x -> %x tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
  return
}
}
