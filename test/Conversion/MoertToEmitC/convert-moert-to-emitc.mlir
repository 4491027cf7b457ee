// RUN: moe-opt %s --convert-moe-to-moert="tokens=16" --convert-moert-to-emitc | FileCheck %s
// RUN: moe-opt %s --moe-fuse-kernels --convert-moe-to-moert="tokens=16" --convert-moert-to-emitc | FileCheck %s --check-prefix=FUSED

// The entries become exported emitc functions with a trailing `where`
// argument; every runtime call is followed by its status check naming the
// call (and the layer in the step), and the layer is timed.
// CHECK: emitc.include "runtime/moert_model.h"
// CHECK: emitc.verbatim "extern \22C\22 {"
// CHECK-LABEL: emitc.func @moe_model_init(
// CHECK-SAME: !emitc.opaque<"moert_context_t">, %{{.*}}: !emitc.opaque<"moert_weights_t">, %{{.*}}: !emitc.opaque<"moert_buffer_t">, %[[WHERE:.*]]: !emitc.ptr<!emitc.ptr<!emitc.opaque<"const char">>>) -> !emitc.opaque<"moert_status_t">
// CHECK: {{(emitc.)?}}call_opaque "moert_weight_request_init"
// CHECK: %[[ST:.*]] = {{(emitc.)?}}call_opaque "moert_weights_load"
// CHECK: {{(emitc.)?}}verbatim "if ({} != MOERT_OK) return moert_model_fail({}, {}, \22init: moert_weights_load 'l0.gate.weight'\22);" args %[[ST]], %[[ST]], %[[WHERE]]
// CHECK-LABEL: emitc.func @moe_model_step(
// CHECK-SAME: !emitc.ptr<!emitc.opaque<"moert_model_layer_stats_t">>, %{{.*}}: i64, %{{.*}}: !emitc.opaque<"moert_view_t">
// CHECK: %[[T0:.*]] = {{(emitc.)?}}call_opaque "moert_model_clock_ns"() : () -> i64
// CHECK: {{(emitc.)?}}call_opaque "moert_gate_config_init"
// CHECK: {{(emitc.)?}}literal "MOERT_NORM_SELECTED" : !emitc.opaque<"moert_gate_norm_t">
// CHECK: %[[GATE:.*]] = {{(emitc.)?}}call_opaque "moert_gate_scores"
// CHECK-NEXT: {{(emitc.)?}}verbatim "{{.*}}\22layer 0: moert_gate_scores\22);" args %[[GATE]], %[[GATE]]
// CHECK: {{(emitc.)?}}call_opaque "moert_gate_select"
// CHECK: {{(emitc.)?}}call_opaque "moert_gate_slots"
// CHECK: {{(emitc.)?}}call_opaque "moert_gate_normalize"
// CHECK: {{(emitc.)?}}call_opaque "moert_model_record_drops"
// CHECK: {{(emitc.)?}}call_opaque "moert_experts_linear"({{.*}}) {args = [0 : index, 1 : index, 2 : index, 3 : index, 4 : index, 8, 5 : index, 1, 128, 64]}
// CHECK: {{(emitc.)?}}call_opaque "moert_experts_linear"
// CHECK: {{(emitc.)?}}call_opaque "moert_activation"({{.*}}) {args = [0 : index, #emitc.opaque<"MOERT_ACT_SILU">, 1 : index, 2 : index, 3 : index]}
// CHECK: {{(emitc.)?}}call_opaque "moert_multiply"
// CHECK: {{(emitc.)?}}call_opaque "moert_experts_linear"({{.*}}) {args = [0 : index, 1 : index, 2 : index, 3 : index, 4 : index, 8, 5 : index, 1, 64, 128]}
// CHECK: {{(emitc.)?}}call_opaque "moert_add"
// CHECK: {{(emitc.)?}}call_opaque "moert_model_record_time"(%{{.*}}, %[[T0]]) {args = [0 : index, 0, 1 : index]}
// CHECK: {{(emitc.)?}}return
// CHECK: emitc.global static const @moe_model_info_data : !emitc.opaque<"moert_model_info_t"> = #emitc.opaque<"{\22model\22, 1, 1, 16, 64, MOERT_F32, 1,
// CHECK-LABEL: emitc.func @moe_model_info()
// CHECK-NOT: moert.
// Fused: w1 and w3 load packed (dst_expert_stride 2 * 128 * 64) and the FFN
// is one moert_fused_experts call on a moert_packed_ffn_desc_t, with no
// shared expert (null descriptor, absent views, 0 tokens).
// FUSED-LABEL: emitc.func @moe_model_init(
// FUSED: {{(emitc.)?}}call_opaque "moert_weight_request_init"({{.*}}) {args = [0 : index, #emitc.opaque<"\22l0.experts.{e}.w1.weight\22">
// FUSED: %[[STRIDE:.*]] = {{(emitc.)?}}literal "16384" : i64
// FUSED: %[[MEMBER:.*]] = "emitc.member"(%{{.*}}) <{member = "dst_expert_stride"}>
// FUSED: {{(emitc.)?}}assign %[[STRIDE]] : i64 to %[[MEMBER]]
// FUSED: {{(emitc.)?}}call_opaque "moert_weights_load"
// FUSED-LABEL: emitc.func @moe_model_step(
// FUSED: "emitc.member"(%[[DESC:.*]]) <{member = "w_gate_up"}> : (!emitc.lvalue<!emitc.opaque<"moert_packed_ffn_desc_t">>)
// FUSED: %[[PDESC:.*]] = {{(emitc.)?}}address_of %[[DESC]] : !emitc.lvalue<!emitc.opaque<"moert_packed_ffn_desc_t">>
// FUSED: {{(emitc.)?}}call_opaque "moert_fused_experts"(%{{.*}}, %[[PDESC]], {{.*}}) {args = [0 : index, 1 : index, 2 : index, 3 : index, 4 : index, 8, 5 : index, 1, #emitc.opaque<"nullptr">, #emitc.opaque<"moert_absent_view()">, #emitc.opaque<"moert_absent_view()">, 0]}
// FUSED-NOT: "moert_experts
module {
func.func @model(%x: tensor<?x64xf32>,
    %wg: tensor<8x64xf32> {moe.weight = "l0.gate.weight"},
    %w1: tensor<8x128x64xf32> {moe.weight = "l0.experts.{e}.w1.weight"},
    %w3: tensor<8x128x64xf32> {moe.weight = "l0.experts.{e}.w3.weight"},
    %w2: tensor<8x64x128xf32> {moe.weight = "l0.experts.{e}.w2.weight"}) -> tensor<?x64xf32> {
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
