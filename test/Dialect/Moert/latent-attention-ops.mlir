// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --verify-roundtrip | FileCheck %s

// DeepSeek MLA's runtime calls in their custom form: the latent cache
// append and the absorbed attention over it.

// CHECK-LABEL: func.func @mla
func.func @mla(%ctx: !moert.context, %s: i64, %pos: !moert.view<i32, 16>,
    %kv: !moert.view<bf16, 384>, %norm: !moert.view<bf16, 16>,
    %cache: !moert.view<bf16, 3072>, %q: !moert.view<bf16, 1024>,
    %wkvb: !moert.view<bf16, 1536>, %o: !moert.view<bf16, 1024>) {
  // CHECK: moert.latent_append %{{.*}}, %{{.*}}, %{{.*}} -> %{{.*}} at %{{.*}}, %{{.*}} tokens %{{.*}} rank 16 rope_dim 8 max_batch 4 max_seq 32 epsilon 9.99999997E-7 <type = yarn, factor = 4.0, original_max_position = 32, attention_factor = 1.0173> : !moert.view<bf16, 384>, !moert.view<bf16, 16>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<bf16, 3072>
  moert.latent_append %ctx, %kv, %norm -> %cache at %pos, %pos tokens %s rank 16 rope_dim 8 max_batch 4 max_seq 32 epsilon 1.0e-6 <type = yarn, factor = 4.0, original_max_position = 32, attention_factor = 1.0173> : !moert.view<bf16, 384>, !moert.view<bf16, 16>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<bf16, 3072>
  // CHECK: moert.latent_attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} at %{{.*}}, %{{.*}} -> %{{.*}} tokens %{{.*}} heads 4 nope_dim 8 v_dim 16 rank 16 rope_dim 8 max_batch 4 max_seq 32 scale 2.500000e-01 <> : !moert.view<bf16, 1024>, !moert.view<bf16, 1536>, !moert.view<bf16, 3072>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<bf16, 1024>
  moert.latent_attention %ctx, %q, %wkvb, %cache at %pos, %pos -> %o tokens %s heads 4 nope_dim 8 v_dim 16 rank 16 rope_dim 8 max_batch 4 max_seq 32 scale 0.25 <> : !moert.view<bf16, 1024>, !moert.view<bf16, 1536>, !moert.view<bf16, 3072>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<bf16, 1024>
  return
}
