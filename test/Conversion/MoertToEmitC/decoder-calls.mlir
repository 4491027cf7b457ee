// RUN: moe-opt %s --convert-moert-to-emitc | moe-translate --moe-to-cpp | FileCheck %s

// The decoder's runtime calls, their C arguments in the order of their
// declaration in runtime/moert.h, and the forward entry with its info.

// CHECK-LABEL: moert_status_t moe_model_forward(
// CHECK-SAME: moert_context_t [[CTX:v[0-9]+]], moert_buffer_t {{v[0-9]+}}, moert_model_layer_stats_t* {{v[0-9]+}}, int64_t [[S:v[0-9]+]], int64_t [[R:v[0-9]+]], moert_view_t [[IDS:v[0-9]+]], moert_view_t [[SEQ:v[0-9]+]], moert_view_t [[POS:v[0-9]+]], moert_view_t [[ROWS:v[0-9]+]], moert_view_t [[LOGITS:v[0-9]+]], moert_view_t [[NEXT:v[0-9]+]], const char** {{v[0-9]+}})
// CHECK-LABEL: moert_embedding(
// CHECK-SAME: [[CTX]], [[IDS]], [[TABLE:v[0-9]+]], [[X:v[0-9]+]], [[S]], [[V:v[0-9]+]], 64);
// CHECK-LABEL: moert_linear(
// CHECK-SAME: [[CTX]], [[X]], [[WQ:v[0-9]+]], [[BQ:v[0-9]+]], [[Q:v[0-9]+]], [[S]], 64, 64);
// CHECK: moert_rope_config_t [[CFG:v[0-9]+]];
// CHECK: [[CFG]].type = MOERT_ROPE_YARN;
// CHECK: [[CFG]].theta = 1.000000e+04;
// CHECK: [[CFG]].factor = 4.000000e+00;
// CHECK: [[CFG]].attention_factor = 1.138600e+00;
// CHECK: [[CFG]].original_max_position = 64;
// CHECK: [[CFG]].truncate = 1;
// CHECK: [[CFG]].rotary_dim = 0;
// CHECK: [[CFG]].interleaved = 0;
// CHECK-NEXT: moert_rope_config_t* [[PCFG:v[0-9]+]] = &[[CFG]];
// CHECK-LABEL: moert_rope(
// CHECK-SAME: [[CTX]], [[PCFG]], [[Q]], [[POS]], [[S]], 4, 16);
// CHECK-LABEL: moert_kv_append(
// CHECK-SAME: [[CTX]], [[K:v[0-9]+]], [[V:v[0-9]+]], [[CACHE:v[0-9]+]], [[SEQ]], [[POS]], [[S]], 2, 16, 4, 32);
// CHECK-LABEL: moert_attention(
// CHECK-SAME: [[CTX]], [[Q]], [[CACHE]], [[SEQ]], [[POS]], [[SINKS:v[0-9]+]], [[O:v[0-9]+]], [[S]], 4, 2, 16, 4, 32, 2.50000000e-01f, 8);
// CHECK-LABEL: moert_embedding(
// CHECK-SAME: [[CTX]], [[ROWS]], [[X]], [[LAST:v[0-9]+]], [[R]], [[S]], 64);
// CHECK-LABEL: moert_linear(
// CHECK-SAME: [[CTX]], [[LAST]], [[TABLE]], moert_absent_view(), [[LOGITS]], [[R]], 96, 64);
// CHECK-LABEL: moert_argmax(
// CHECK-SAME: [[CTX]], [[LOGITS]], [[NEXT]], [[R]], 96);
// CHECK: static const moert_model_info_t moe_model_info_data = {"model", 1, 1, 16, 64, MOERT_F32, 1, 131072, 0, 0, "", 0, MOERT_MODEL_DECODER, 96, 4, 32, 32768, 2, 0};

module attributes {moert.max_tokens = 16 : i64} {
func.func @model_init(%ctx: !moert.context, %w: !moert.weights, %state: !moert.buffer<131072>) attributes {moert.entry = "init"} {
  return
}
func.func @model_step(%ctx: !moert.context, %state: !moert.buffer<131072>, %stats: !moert.stats, %s: i64, %r: i64,
    %ids: !moert.view<i32, 16>, %seq: !moert.view<i32, 16>, %pos: !moert.view<i32, 16>,
    %rows: !moert.view<i32, 4>, %logits: !moert.view<f32, 384>, %next: !moert.view<i32, 4>)
    attributes {moert.entry = "forward", moert.hidden = 64 : i64, moert.dtype = f32, moert.vocab = 96 : i64,
                moert.max_batch = 4 : i64, moert.max_seq = 32 : i64, moert.cache_bytes = 32768 : i64,
                moert.attention_tp = 2 : i64} {
  %table = moert.view %state[0] : !moert.buffer<131072> -> !moert.view<f32, 6144>
  %x = moert.view %state[6144] : !moert.buffer<131072> -> !moert.view<f32, 1024>
  %wq = moert.view %state[7168] : !moert.buffer<131072> -> !moert.view<f32, 4096>
  %bq = moert.view %state[11264] : !moert.buffer<131072> -> !moert.view<f32, 64>
  %q = moert.view %state[11328] : !moert.buffer<131072> -> !moert.view<f32, 1024>
  %k = moert.view %state[12352] : !moert.buffer<131072> -> !moert.view<f32, 512>
  %v = moert.view %state[12864] : !moert.buffer<131072> -> !moert.view<f32, 512>
  %o = moert.view %state[13376] : !moert.buffer<131072> -> !moert.view<f32, 1024>
  %cache = moert.view %state[14400] : !moert.buffer<131072> -> !moert.view<f32, 8192>
  %last = moert.view %state[22592] : !moert.buffer<131072> -> !moert.view<f32, 256>
  %sinks = moert.view %state[22848] : !moert.buffer<131072> -> !moert.view<f32, 4>
  %vocab = arith.constant 96 : i64
  moert.layer %stats index 0 {
    moert.embedding %ctx, %ids, %table -> %x tokens %s vocab %vocab hidden 64 : !moert.view<i32, 16>, !moert.view<f32, 6144> -> !moert.view<f32, 1024>
    moert.linear %ctx, %x, %wq bias %bq -> %q tokens %s n 64 k 64 : !moert.view<f32, 1024>, !moert.view<f32, 4096>, !moert.view<f32, 64> -> !moert.view<f32, 1024>
    moert.rope %ctx, %q positions %pos tokens %s heads 4 head_dim 16 <type = yarn, factor = 4.0, original_max_position = 64, attention_factor = 1.1386> : !moert.view<f32, 1024>, !moert.view<i32, 16>
    moert.kv_append %ctx, %k, %v -> %cache at %seq, %pos tokens %s kv_heads 2 head_dim 16 max_batch 4 max_seq 32 : !moert.view<f32, 512>, !moert.view<f32, 512>, !moert.view<i32, 16>, !moert.view<i32, 16> -> !moert.view<f32, 8192>
    moert.attention %ctx, %q, %cache at %seq, %pos sinks %sinks -> %o tokens %s heads 4 kv_heads 2 head_dim 16 max_batch 4 max_seq 32 scale 0.25 window 8 : !moert.view<f32, 1024>, !moert.view<f32, 8192>, !moert.view<i32, 16>, !moert.view<i32, 16>, !moert.view<f32, 4> -> !moert.view<f32, 1024>
    moert.embedding %ctx, %rows, %x -> %last tokens %r vocab %s hidden 64 : !moert.view<i32, 4>, !moert.view<f32, 1024> -> !moert.view<f32, 256>
    moert.linear %ctx, %last, %table -> %logits tokens %r n 96 k 64 : !moert.view<f32, 256>, !moert.view<f32, 6144> -> !moert.view<f32, 384>
    moert.argmax %ctx, %logits -> %next tokens %r vocab 96 : !moert.view<f32, 384> -> !moert.view<i32, 4>
  }
  return
}
}
