// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --verify-roundtrip | FileCheck %s

// The decoder's runtime calls in their custom form.

// CHECK-LABEL: func.func @decoder
func.func @decoder(%ctx: !moert.context, %s: i64, %ids: !moert.view<i32, 16>,
    %table: !moert.view<bf16, 6144>, %x: !moert.view<bf16, 1024>,
    %w: !moert.view<bf16, 4096>, %b: !moert.view<bf16, 64>,
    %q: !moert.view<bf16, 1024>, %k: !moert.view<bf16, 512>,
    %cache: !moert.view<bf16, 8192>, %logits: !moert.view<f32, 1536>,
    %sinks: !moert.view<bf16, 4>) {
  // CHECK: moert.embedding %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} vocab %{{.*}} hidden 64
  moert.embedding %ctx, %ids, %table -> %x tokens %s vocab %s hidden 64 : !moert.view<i32, 16>, !moert.view<bf16, 6144> -> !moert.view<bf16, 1024>
  // CHECK: moert.linear {{.*}} bias {{.*}} tokens %{{.*}} n 64 k 64
  moert.linear %ctx, %x, %w bias %b -> %q tokens %s n 64 k 64 : !moert.view<bf16, 1024>, !moert.view<bf16, 4096>, !moert.view<bf16, 64> -> !moert.view<bf16, 1024>
  // CHECK: moert.rope {{.*}} heads 4 head_dim 16 <type = llama3, theta = 5.0e+05, factor = 8.0, original_max_position = 8192>
  moert.rope %ctx, %q positions %ids tokens %s heads 4 head_dim 16 <type = llama3, theta = 5.0e5, factor = 8.0, original_max_position = 8192> : !moert.view<bf16, 1024>, !moert.view<i32, 16>
  // CHECK: moert.kv_append {{.*}} kv_heads 2 head_dim 16 max_batch 4 max_seq 32
  moert.kv_append %ctx, %k, %k -> %cache at %ids, %ids tokens %s kv_heads 2 head_dim 16 max_batch 4 max_seq 32 : !moert.view<bf16, 512>, !moert.view<bf16, 512>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<bf16, 8192>
  // CHECK: moert.attention {{.*}} heads 4 kv_heads 2 head_dim 16 max_batch 4 max_seq 32 scale 2.500000e-01
  moert.attention %ctx, %q, %cache at %ids, %ids -> %x tokens %s heads 4 kv_heads 2 head_dim 16 max_batch 4 max_seq 32 scale 0.25 : !moert.view<bf16, 1024>, !moert.view<bf16, 8192>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<bf16, 1024>
  // CHECK: moert.attention {{.*}} sinks %{{.*}} -> {{.*}} scale 2.500000e-01 window 8 : {{.*}}, !moert.view<bf16, 4> -> !moert.view<bf16, 1024>
  moert.attention %ctx, %q, %cache at %ids, %ids sinks %sinks -> %x tokens %s heads 4 kv_heads 2 head_dim 16 max_batch 4 max_seq 32 scale 0.25 window 8 : !moert.view<bf16, 1024>, !moert.view<bf16, 8192>, !moert.view<i32, 16>, !moert.view<i32, 16>, !moert.view<bf16, 4> -> !moert.view<bf16, 1024>
  // CHECK: moert.argmax {{.*}} vocab 96
  moert.argmax %ctx, %logits -> %ids tokens %s vocab 96 : !moert.view<f32, 1536> -> !moert.view<i32, 16>
  return
}
