// RUN: moe-opt %s --convert-moert-to-emitc | moe-translate --moe-to-cpp | FileCheck %s

// Every runtime call of the moert dialect once, its C arguments checked in
// the order of its declaration in runtime/moert.h (or moert_model.h): views
// and scalars by name, static sizes and enums by value, struct arguments by
// the local they are built in.

// CHECK-LABEL: moert_status_t moe_model_init(
// CHECK-SAME: moert_context_t [[CTX:v[0-9]+]], moert_weights_t [[FILE:v[0-9]+]], moert_buffer_t [[STATE:v[0-9]+]], const char** [[WHERE:v[0-9]+]])
// CHECK: int32_t [[RANK:v[0-9]+]] = moert_context_rank([[CTX]]);
// CHECK: int64_t [[R:v[0-9]+]] = (int64_t) [[RANK]];
// CHECK: moert_view_t [[DST:v[0-9]+]] = moert_make_view([[STATE]], 256, MOERT_BF16);
// CHECK: int64_t [[SHAPE:v[0-9]+]][2] = {128, 64};
// CHECK: moert_weight_request_t [[REQ:v[0-9]+]];
// CHECK: moert_weight_request_init({{v[0-9]+}}, "l0.experts.{e}.w1", 2, [[SHAPE]]);
// CHECK: [[REQ]].expert_begin =
// CHECK: [[REQ]].end[0] =
// CHECK: [[REQ]].dst_expert_stride = 8192;
// CHECK-NEXT: moert_weight_request_t* [[PREQ:v[0-9]+]] = &[[REQ]];
// CHECK-LABEL: moert_weights_load(
// CHECK-SAME: [[CTX]], [[FILE]], [[PREQ]], [[DST]]);
// CHECK-NEXT: if ({{v[0-9]+}} != MOERT_OK) return moert_model_fail({{v[0-9]+}}, [[WHERE]], "init: moert_weights_load 'l0.experts.{e}.w1'");
// CHECK: moert_weight_request_init({{v[0-9]+}}, "l0.input_linear", 2, {{v[0-9]+}});
// CHECK: [[FREQ:v[0-9]+]].expert_begin =
// CHECK: moert_fused_view_t [[VIEW:v[0-9]+]] = {3, {4, 48, 32}, 768, 1536, {32, 1}};
// CHECK-NEXT: moert_fused_view_t* [[PVIEW:v[0-9]+]] = &[[VIEW]];
// CHECK-LABEL: moert_weights_load_fused(
// CHECK-SAME: [[CTX]], [[FILE]], {{v[0-9]+}}, [[PVIEW]], {{v[0-9]+}});
// CHECK-NEXT: if ({{v[0-9]+}} != MOERT_OK) return moert_model_fail({{v[0-9]+}}, [[WHERE]], "init: moert_weights_load_fused 'l0.input_linear'");
// CHECK: int32_t [[TABLE:v[0-9]+]][4] = {0, 1, 2, 3};
// CHECK-LABEL: moert_model_keep_group(
// CHECK-SAME: [[CTX]], [[TABLE]], 2, 2, 3);
// CHECK-NEXT: "init: moert_model_keep_group (slot 3)"

// CHECK-LABEL: moert_status_t moe_model_step(
// CHECK-SAME: moert_context_t [[CTX:v[0-9]+]], moert_buffer_t [[STATE:v[0-9]+]], moert_model_layer_stats_t* [[STATS:v[0-9]+]],
// CHECK-SAME: int64_t [[S:v[0-9]+]], int64_t [[CAP:v[0-9]+]], int64_t [[N:v[0-9]+]], bool [[FIRST:v[0-9]+]],
// CHECK-SAME: moert_view_t [[WG:v[0-9]+]], moert_view_t [[BIAS:v[0-9]+]], moert_view_t [[LOGITS:v[0-9]+]], moert_view_t [[CORR:v[0-9]+]],
// CHECK-SAME: moert_view_t [[SCORES:v[0-9]+]], moert_view_t [[IDS:v[0-9]+]], moert_view_t [[W:v[0-9]+]], moert_view_t [[SLOTS:v[0-9]+]],
// CHECK-SAME: moert_view_t [[COUNTS:v[0-9]+]], moert_view_t [[EBUF:v[0-9]+]], moert_view_t [[EOUT:v[0-9]+]], moert_view_t [[W1:v[0-9]+]],
// CHECK-SAME: moert_view_t [[W2:v[0-9]+]], moert_view_t [[H:v[0-9]+]], moert_view_t [[U:v[0-9]+]], moert_view_t [[GATEUP:v[0-9]+]],
// CHECK-SAME: moert_view_t [[SGU:v[0-9]+]], moert_view_t [[SD:v[0-9]+]], moert_view_t [[Y:v[0-9]+]], moert_view_t [[Z:v[0-9]+]],
// CHECK-SAME: moert_view_t [[B1:v[0-9]+]], moert_view_t [[B2:v[0-9]+]], moert_view_t [[WC:v[0-9]+]], moert_view_t [[BC:v[0-9]+]],
// CHECK-SAME: moert_view_t [[WSG:v[0-9]+]], moert_view_t [[SEND:v[0-9]+]], moert_view_t [[RECV:v[0-9]+]], moert_view_t [[GATHERED:v[0-9]+]],
// CHECK-SAME: moert_view_t [[X:v[0-9]+]], moert_view_t [[MX:v[0-9]+]], moert_view_t [[MXS:v[0-9]+]], const char** [[WHERE:v[0-9]+]])

// CHECK: int64_t [[T0:v[0-9]+]] = moert_model_clock_ns();
// CHECK-LABEL: moert_router(
// CHECK-SAME: [[CTX]], [[X]], [[WG]], [[BIAS]], [[LOGITS]], [[S]], 64, 8);
// CHECK-NEXT: if ({{v[0-9]+}} != MOERT_OK) return moert_model_fail({{v[0-9]+}}, [[WHERE]], "layer 5: moert_router");

// CHECK: moert_gate_config_t [[CFG:v[0-9]+]];
// CHECK: moert_gate_config_init({{v[0-9]+}}, 8, 2);
// CHECK: [[CFG]].score_func = MOERT_SCORE_SIGMOID;
// CHECK: [[CFG]].group_score = MOERT_GROUP_SCORE_TOP2_SUM;
// CHECK: [[CFG]].norm = MOERT_NORM_SELECTED;
// CHECK: [[CFG]].drop_order = MOERT_DROP_CHOICE_MAJOR;
// CHECK: [[CFG]].static_capacity = 16;
// CHECK-NEXT: moert_gate_config_t* [[PCFG:v[0-9]+]] = &[[CFG]];
// CHECK-NEXT: int64_t [[C1:v[0-9]+]] = 0;
// CHECK-NEXT: int64_t* [[PC1:v[0-9]+]] = &[[C1]];
// CHECK-LABEL: moert_gate(
// CHECK-SAME: [[CTX]], [[PCFG]], [[LOGITS]], [[CORR]], [[S]], [[IDS]], [[W]], [[SLOTS]], [[COUNTS]], [[PC1]]);
// CHECK: moert_gate_config_t [[CFG:v[0-9]+]];
// CHECK: [[CFG]].score_func = MOERT_SCORE_SOFTMAX;
// CHECK: [[CFG]].drop_order = MOERT_DROP_CHOICE_MAJOR;
// CHECK-NEXT: moert_gate_config_t* [[PCFG:v[0-9]+]] = &[[CFG]];
// CHECK-LABEL: moert_gate_scores(
// CHECK-SAME: [[CTX]], [[PCFG]], [[LOGITS]], [[S]], [[SCORES]]);
// CHECK: [[CFG:v[0-9]+]].drop_order = MOERT_DROP_CHOICE_MAJOR;
// CHECK-NEXT: moert_gate_config_t* [[PCFG:v[0-9]+]] = &[[CFG]];
// CHECK-LABEL: moert_gate_select(
// CHECK-SAME: [[CTX]], [[PCFG]], [[SCORES]], moert_absent_view(), [[S]], [[IDS]], [[W]]);
// CHECK: [[CFG:v[0-9]+]].drop_order = MOERT_DROP_CHOICE_MAJOR;
// CHECK-NEXT: moert_gate_config_t* [[PCFG:v[0-9]+]] = &[[CFG]];
// CHECK-NEXT: int64_t [[C2:v[0-9]+]] = 0;
// CHECK-NEXT: int64_t* [[PC2:v[0-9]+]] = &[[C2]];
// CHECK-LABEL: moert_gate_slots(
// CHECK-SAME: [[CTX]], [[PCFG]], [[IDS]], [[W]], [[S]], [[SLOTS]], [[COUNTS]], [[PC2]]);
// CHECK: [[CFG:v[0-9]+]].drop_order = MOERT_DROP_CHOICE_MAJOR;
// CHECK-NEXT: moert_gate_config_t* [[PCFG:v[0-9]+]] = &[[CFG]];
// CHECK-LABEL: moert_gate_normalize(
// CHECK-SAME: [[CTX]], [[PCFG]], [[SLOTS]], [[S]], [[W]]);
// CHECK-LABEL: moert_model_record_drops(
// CHECK-SAME: [[CTX]], [[STATS]], 5, [[COUNTS]], [[S]], 2, 8);

// CHECK-LABEL: moert_dispatch(
// CHECK-SAME: [[CTX]], [[X]], [[IDS]], [[SLOTS]], moert_absent_view(), [[EBUF]], [[S]], 64, 2, 8, [[CAP]]);

// CHECK: moert_ffn_desc_t [[DESC:v[0-9]+]];
// CHECK: [[DESC]].kind = MOERT_FFN_GATED;
// CHECK: [[DESC]].activation = MOERT_ACT_SILU;
// CHECK: [[DESC]].w_gate = [[W1]];
// CHECK: [[DESC]].w_up = [[W1]];
// CHECK: [[DESC]].w_down = [[W2]];
// CHECK: [[DESC]].b2 = {{v[0-9]+}};
// CHECK-NEXT: moert_ffn_desc_t* [[PDESC:v[0-9]+]] = &[[DESC]];
// CHECK-LABEL: moert_experts(
// CHECK-SAME: [[CTX]], [[PDESC]], [[EBUF]], [[EOUT]], [[COUNTS]], 8, [[CAP]], 1);
// CHECK-LABEL: moert_experts_linear(
// CHECK-SAME: [[CTX]], [[W1]], [[EBUF]], [[H]], [[COUNTS]], 8, [[CAP]], 1, 128, 64);
// CHECK-LABEL: moert_quantized_experts_linear(
// CHECK-SAME: [[CTX]], MOERT_WEIGHTS_MXFP4, 1, 32, [[MX]], [[MXS]], [[EBUF]], [[H]], [[COUNTS]], 8, [[CAP]], 1, 128, 64);
// CHECK-LABEL: moert_activation(
// CHECK-SAME: [[CTX]], MOERT_ACT_GELU_TANH, [[H]], [[H]], [[N]]);
// CHECK-LABEL: moert_multiply(
// CHECK-SAME: [[CTX]], [[H]], [[U]], [[H]], [[N]]);
// CHECK-LABEL: moert_experts_bias_add(
// CHECK-SAME: [[CTX]], [[U]], [[H]], [[H]], [[COUNTS]], 8, [[CAP]], 1, 128);
// CHECK-LABEL: moert_swiglu_clamped(
// CHECK-SAME: [[CTX]], [[H]], [[U]], [[H]], [[N]], 1.70200002e+00f, 7.00000000e+00f);

// CHECK: moert_packed_ffn_desc_t [[PACKED:v[0-9]+]];
// CHECK: [[PACKED]].w_gate_up = [[GATEUP]];
// CHECK-NEXT: [[PACKED]].w_down = [[W2]];
// CHECK-NEXT: moert_packed_ffn_desc_t* [[PPACKED:v[0-9]+]] = &[[PACKED]];
// CHECK: moert_packed_ffn_desc_t [[SHARED:v[0-9]+]];
// CHECK: [[SHARED]].ffn = 64;
// CHECK: [[SHARED]].w_gate_up = [[SGU]];
// CHECK-NEXT: [[SHARED]].w_down = [[SD]];
// CHECK-NEXT: moert_packed_ffn_desc_t* [[PSHARED:v[0-9]+]] = &[[SHARED]];
// CHECK-LABEL: moert_fused_experts(
// CHECK-SAME: [[CTX]], [[PPACKED]], [[EBUF]], [[EOUT]], [[COUNTS]], 8, [[CAP]], 1, [[PSHARED]], [[X]], [[Y]], [[S]]);

// CHECK: moert_ffn_desc_t [[DESC:v[0-9]+]];
// CHECK: [[DESC]].kind = MOERT_FFN_PLAIN;
// CHECK: [[DESC]].w_gate = [[W1]];
// CHECK: [[DESC]].b1 = [[B1]];
// CHECK: moert_view_t [[B2IF:v[0-9]+]] = [[FIRST]] ? [[B2]] : {{v[0-9]+}};
// CHECK: [[DESC]].b2 = [[B2IF]];
// CHECK-NEXT: moert_ffn_desc_t* [[PDESC:v[0-9]+]] = &[[DESC]];
// CHECK-LABEL: moert_dense_ffn(
// CHECK-SAME: [[CTX]], [[PDESC]], [[X]], [[Y]], [[S]]);

// CHECK-LABEL: moert_combine(
// CHECK-SAME: [[CTX]], [[EOUT]], [[IDS]], [[SLOTS]], [[W]], [[X]], [[Y]], [[S]], 64, 2, 8, [[CAP]]);
// Llama 4: weights at the dispatch, none at the combine.
// CHECK-LABEL: moert_dispatch(
// CHECK-SAME: [[CTX]], [[X]], [[IDS]], [[SLOTS]], [[W]], [[EBUF]], [[S]], 64, 2, 8, [[CAP]]);
// CHECK-LABEL: moert_combine(
// CHECK-SAME: [[CTX]], [[EOUT]], [[IDS]], [[SLOTS]], moert_absent_view(), moert_absent_view(), [[Y]], [[S]], 64, 2, 8, [[CAP]]);
// CHECK-LABEL: moert_fused_combine(
// CHECK-SAME: [[CTX]], [[EOUT]], [[IDS]], [[SLOTS]], moert_absent_view(), moert_absent_view(), moert_absent_view(), moert_absent_view(), [[Y]], moert_absent_view(), moert_absent_view(), [[X]], [[X]], [[S]], 64, 2, 8, [[CAP]]);
// CHECK-LABEL: moert_fused_combine(
// CHECK-SAME: [[CTX]], [[EOUT]], [[IDS]], [[SLOTS]], [[W]], [[Z]], [[WC]], [[BC]], [[Y]], [[WSG]], [[X]], [[X]], [[X]], [[S]], 64, 2, 8, [[CAP]]);
// CHECK-LABEL: moert_residual_mix(
// CHECK-SAME: [[CTX]], [[X]], [[WC]], [[BC]], [[Y]], [[Z]], [[Z]], [[S]], 64);
// CHECK-LABEL: moert_shared_add(
// CHECK-SAME: [[CTX]], [[Y]], [[Z]], [[X]], [[WSG]], [[Y]], [[S]], 64);
// CHECK-LABEL: moert_add(
// CHECK-SAME: [[CTX]], [[X]], [[Y]], [[X]], [[N]]);
// CHECK-LABEL: moert_rms_norm(
// CHECK-SAME: [[CTX]], [[X]], [[B2]], [[Y]], [[S]], 64, 9.99999997e-07f);

// CHECK: moert_group_t [[G:v[0-9]+]] = NULL;
// CHECK-NEXT: moert_group_t* [[PG:v[0-9]+]] = &[[G]];
// CHECK-LABEL: moert_context_group(
// CHECK-SAME: [[CTX]], 3, [[PG]]);
// CHECK: moert_group_t [[GROUP:v[0-9]+]] = [[G]];
// CHECK-LABEL: moert_all_to_all(
// CHECK-SAME: [[CTX]], [[GROUP]], MOERT_A2A_TO_EXPERTS, MOERT_A2A_HIERARCHICAL, [[SEND]], [[RECV]], 4, [[CAP]], 64);
// CHECK-LABEL: moert_all_to_all_sliced(
// CHECK-SAME: [[CTX]], [[GROUP]], MOERT_A2A_FROM_EXPERTS, MOERT_A2A_FLAT, [[RECV]], [[SEND]], 4, [[CAP]], 64, 2);
// CHECK-LABEL: moert_all_reduce(
// CHECK-SAME: [[CTX]], [[GROUP]], MOERT_REDUCE_SUM, [[Y]], [[Y]], [[N]]);
// CHECK-LABEL: moert_all_gather(
// CHECK-SAME: [[CTX]], [[GROUP]], [[Y]], [[GATHERED]], [[N]]);
// CHECK-LABEL: moert_reduce_scatter(
// CHECK-SAME: [[CTX]], [[GROUP]], [[GATHERED]], [[Y]], [[N]]);
// CHECK: int64_t [[V:v[0-9]+]] = 0;
// CHECK-NEXT: [[V]] = [[CAP]];
// CHECK-NEXT: int64_t* [[PV:v[0-9]+]] = &[[V]];
// CHECK-LABEL: moert_all_reduce_i64(
// CHECK-SAME: [[CTX]], [[GROUP]], MOERT_REDUCE_MAX, [[PV]]);
// CHECK: int64_t [[ROWS:v[0-9]+]] = 0;
// CHECK-NEXT: [[ROWS]] = [[CAP]];
// CHECK-NEXT: int64_t* [[PROWS:v[0-9]+]] = &[[ROWS]];
// CHECK-LABEL: moert_token_share(
// CHECK-SAME: [[CTX]], [[GROUP]], {{v[0-9]+}}, {{v[0-9]+}}, 64, [[PROWS]]);
// CHECK: moert_model_record_time([[STATS]], 5, [[T0]]);

module attributes {moert.max_tokens = 16 : i64} {
func.func @model_init(%ctx: !moert.context, %file: !moert.weights,
                      %state: !moert.buffer<1048576>)
    attributes {moert.entry = "init"} {
  %r = moert.rank %ctx
  %dst = moert.view %state[256] : !moert.buffer<1048576> -> !moert.view<bf16, 16384>
  moert.load_weight %ctx, %file "l0.experts.{e}.w1" experts [0, 2) + %r shape [128, 64] begin [0, 0] end [64, 64] + (%r, %r) -> %dst stride 8192 : !moert.view<bf16, 16384>
  moert.load_fused_weight %ctx, %file "l0.input_linear" experts [0, 2) + %r fused [4, 48, 32] offset 768 expert_stride 1536 strides [32, 1] shape [24, 32] begin [0, 0] end [0, 0] -> %dst : !moert.view<bf16, 16384>
  moert.keep_group %ctx [[0, 1], [2, 3]] slot 3
  return
}

func.func @model_step(%ctx: !moert.context, %state: !moert.buffer<1048576>,
    %stats: !moert.stats, %s: i64, %cap: i64, %n: i64, %first: i1,
    %wg: !moert.view<f32, 512>, %bias: !moert.view<f32, 8>,
    %logits: !moert.view<f32, 128>, %corr: !moert.view<f32, 8>,
    %scores: !moert.view<f32, 128>, %ids: !moert.view<i32, 32>,
    %w: !moert.view<f32, 32>, %slots: !moert.view<i32, 32>,
    %counts: !moert.view<i32, 8>, %ebuf: !moert.view<f32, 8192>,
    %eout: !moert.view<f32, 8192>, %w1: !moert.view<f32, 65536>,
    %w2: !moert.view<f32, 65536>, %h: !moert.view<f32, 16384>,
    %u: !moert.view<f32, 16384>, %gate_up: !moert.view<f32, 131072>,
    %sgu: !moert.view<f32, 8192>, %sd: !moert.view<f32, 4096>,
    %y: !moert.view<f32, 1024>, %z: !moert.view<f32, 1024>,
    %b1: !moert.view<f32, 128>, %b2: !moert.view<f32, 64>,
    %wc: !moert.view<f32, 128>, %bc: !moert.view<f32, 2>,
    %wsg: !moert.view<f32, 64>, %send: !moert.view<f32, 8192>,
    %recv: !moert.view<f32, 8192>, %gathered: !moert.view<f32, 2048>,
    %x: !moert.view<f32, 1024>, %mx: !moert.view<ui8, 32768>,
    %mxs: !moert.view<ui8, 2048>) attributes {moert.entry = "step"} {
  moert.layer %stats index 5 {
    moert.router %ctx, %x, %wg bias %bias -> %logits tokens %s hidden 64 experts 8 : !moert.view<f32, 1024>, !moert.view<f32, 512>, !moert.view<f32, 8> -> !moert.view<f32, 128>
    %c1 = moert.gate %ctx, %logits correction %corr -> %ids, %w, %slots, %counts tokens %s experts 8 <scoring = sigmoid, top_k = 2, n_group = 4, topk_group = 2, group_score = top2_sum, normalize = selected> static_capacity 16 : !moert.view<f32, 128>, !moert.view<f32, 8> -> !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<i32, 32>, !moert.view<i32, 8>
    moert.gate_scores %ctx, %logits -> %scores tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<f32, 128> -> !moert.view<f32, 128>
    moert.gate_select %ctx, %scores -> %ids, %w tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<f32, 128> -> !moert.view<i32, 32>, !moert.view<f32, 32>
    %c2 = moert.gate_slots %ctx, %ids, %w -> %slots, %counts tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<i32, 32>, !moert.view<i32, 8>
    moert.gate_normalize %ctx, %slots -> %w tokens %s experts 8 <scoring = softmax, top_k = 2> : !moert.view<i32, 32> -> !moert.view<f32, 32>
    moert.record_drops %ctx, %stats layer 5 counts %counts tokens %s top_k 2 experts 8 : !moert.view<i32, 8>
    moert.dispatch %ctx, %x, %ids, %slots -> %ebuf tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 1024>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8192>
    moert.experts %ctx, silu %ebuf : !moert.view<f32, 8192> gate %w1 : !moert.view<f32, 65536> up %w1 : !moert.view<f32, 65536> down %w2 : !moert.view<f32, 65536> -> %eout : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 hidden 64 ffn 128
    moert.experts_linear %ctx, %w1 : !moert.view<f32, 65536> in %ebuf : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 n 128 k 64
    moert.quantized_experts_linear %ctx, mxfp4 block_rows 1 block_cols 32 %mx : !moert.view<ui8, 32768> scales %mxs : !moert.view<ui8, 2048> in %ebuf : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 n 128 k 64
    moert.activation %ctx, gelu_tanh %h -> %h count %n : !moert.view<f32, 16384> -> !moert.view<f32, 16384>
    moert.multiply %ctx, %h, %u -> %h count %n : !moert.view<f32, 16384>, !moert.view<f32, 16384> -> !moert.view<f32, 16384>
    moert.experts_bias_add %ctx, %u : !moert.view<f32, 16384> in %h : !moert.view<f32, 16384> -> %h : !moert.view<f32, 16384> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 n 128
    moert.swiglu_clamped %ctx, %h, %u -> %h count %n alpha 1.702 limit 7.0 : !moert.view<f32, 16384>, !moert.view<f32, 16384> -> !moert.view<f32, 16384>
    moert.fused_experts %ctx, silu %ebuf : !moert.view<f32, 8192> gate_up %gate_up : !moert.view<f32, 131072> down %w2 : !moert.view<f32, 65536> -> %eout : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1 hidden 64 ffn 128 shared(%x : !moert.view<f32, 1024> gate_up %sgu : !moert.view<f32, 8192> down %sd : !moert.view<f32, 4096> -> %y : !moert.view<f32, 1024> tokens %s ffn 64)
    moert.dense_ffn %ctx, relu %x : !moert.view<f32, 1024> up %w1 : !moert.view<f32, 65536> bias %b1 : !moert.view<f32, 128> down %w2 : !moert.view<f32, 65536> bias %b2 : !moert.view<f32, 64> if %first -> %y : !moert.view<f32, 1024> tokens %s hidden 64 ffn 128
    moert.combine %ctx, %eout, %ids, %slots, %w addend %x -> %y tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 32>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
    moert.dispatch %ctx, %x, %ids, %slots weights %w : !moert.view<f32, 32> -> %ebuf tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 1024>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 8192>
    moert.combine %ctx, %eout, %ids, %slots -> %y tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32> unweighted -> !moert.view<f32, 1024>
    moert.fused_combine %ctx, %eout, %ids, %slots shared(%y : !moert.view<f32, 1024>) addend(%x : !moert.view<f32, 1024>) -> %x tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32> -> !moert.view<f32, 1024>
    moert.fused_combine %ctx, %eout, %ids, %slots, %w mix(%z : !moert.view<f32, 1024>, %wc : !moert.view<f32, 128> bias %bc : !moert.view<f32, 2>) shared(%y : !moert.view<f32, 1024> gate %wsg : !moert.view<f32, 64>) x(%x : !moert.view<f32, 1024>) addend(%x : !moert.view<f32, 1024>) -> %x tokens %s capacity %cap hidden 64 top_k 2 experts 8 : !moert.view<f32, 8192>, !moert.view<i32, 32>, !moert.view<i32, 32>, !moert.view<f32, 32> -> !moert.view<f32, 1024>
    moert.residual_mix %ctx, %y, %z coefficient(%x, %wc bias %bc) -> %z tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 128>, !moert.view<f32, 2> -> !moert.view<f32, 1024>
    moert.shared_add %ctx, %y, %z gated(%x, %wsg) -> %y tokens %s hidden 64 : !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 1024>, !moert.view<f32, 64> -> !moert.view<f32, 1024>
    moert.add %ctx, %x, %y -> %x count %n : !moert.view<f32, 1024>, !moert.view<f32, 1024> -> !moert.view<f32, 1024>
    moert.rms_norm %ctx, %x, %b2 -> %y tokens %s hidden 64 epsilon 1.0e-06 : !moert.view<f32, 1024>, !moert.view<f32, 64> -> !moert.view<f32, 1024>
    %g = moert.group %ctx slot 3
    moert.all_to_all %ctx, %g to_experts hierarchical %send -> %recv experts_local 4 capacity %cap hidden 64 : !moert.view<f32, 8192> -> !moert.view<f32, 8192>
    moert.all_to_all_sliced %ctx, %g from_experts flat %recv -> %send experts_local 4 capacity %cap hidden 64 slices 2 : !moert.view<f32, 8192> -> !moert.view<f32, 8192>
    moert.all_reduce %ctx, %g sum %y -> %y count %n : !moert.view<f32, 1024> -> !moert.view<f32, 1024>
    moert.all_gather %ctx, %g %y -> %gathered count %n : !moert.view<f32, 1024> -> !moert.view<f32, 2048>
    moert.reduce_scatter %ctx, %g %gathered -> %y count %n : !moert.view<f32, 2048> -> !moert.view<f32, 1024>
    %max = moert.all_reduce_i64 %ctx, %g max %cap
    %rows = moert.token_share %ctx, %g %gathered -> %y tokens %cap hidden 64 : !moert.view<f32, 2048> -> !moert.view<f32, 1024>
  }
  return
}
}
