//===- MoertOps.td - moert dialect operations --------------*- tablegen -*-===//

#ifndef MOE_DIALECT_MOERT_IR_MOERTOPS_TD
#define MOE_DIALECT_MOERT_IR_MOERTOPS_TD

include "dialects/moert/IR/MoertCall.td"
include "dialects/moe/IR/MoeAttrs.td"
include "mlir/IR/Properties.td"

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

def Moert_AllocOp : Moert_Op<"alloc"> {
  let summary = "moert_buffer_alloc: a buffer of the type's byte size";
  let description = [{
    ```mlir
    %buf = moert.alloc %ctx : !moert.buffer<65536>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx);
  let results = (outs Moert_Buffer:$buffer);
  let assemblyFormat = "$ctx attr-dict `:` type($buffer)";
  let hasVerifier = 0;
}

def Moert_ViewOp : Moert_Op<"view", [Pure]> {
  let summary = "moert_make_view: a typed window of a buffer";
  let description = [{
    `offset` is in elements of the view's type; the view must end inside the
    buffer. Views of one buffer may overlap when the buffer planner proved
    their lifetimes disjoint.

    ```mlir
    %x = moert.view %buf[1024] : !moert.buffer<65536> -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_Buffer:$buffer, I64Prop:$offset);
  let results = (outs Moert_View:$view);
  let assemblyFormat = [{
    $buffer `[` $offset `]` attr-dict `:` type($buffer) `->` type($view)
  }];
}

//===----------------------------------------------------------------------===//
// Router and gate
//===----------------------------------------------------------------------===//

def Moert_RouterOp : Moert_CallOp<"router", "moert_router", "router"> {
  let summary = "moert_router: fp32 logits [S, E] = x [S, H] . wg [E, H]^T + b";
  let description = [{
    ```mlir
    moert.router %ctx, %x, %wg -> %logits tokens %s hidden 64 experts 8
        : !moert.view<f32, 4096>, !moert.view<f32, 512> -> !moert.view<f32, 512>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x,
                       Moert_In:$weight, Moert_OptIn:$bias,
                       Moert_Out:$logits, I64:$tokens, I64Prop:$hidden,
                       I64Prop:$experts);
  let assemblyFormat = [{
    $ctx `,` $x `,` $weight (`bias` $bias^)? `->` $logits `tokens` $tokens
    `hidden` $hidden `experts` $experts attr-dict `:` type($x) `,`
    type($weight) (`,` type($bias)^)? `->` type($logits)
  }];
}

def Moert_GateOp : Moert_CallOp<"gate", "moert_gate", "gate"> {
  let summary = "moert_gate: top-k selection, weights and capacity slots";
  let description = [{
    Applies `routing` (the runtime's gate configuration, with `experts`) to
    fp32 logits `[S, E]`; writes ids, weights, slots `[S, k]` and counts `[E]`
    and returns the capacity the rank computed (dropless: its largest count,
    or `static_capacity` when set: a bound fixed at compile time, so that no
    count is read back to the host and the step can be captured in a CUDA
    graph). The semantics are the runtime's (runtime/moert.h, implemented
    once in runtime/common/Gate.cpp).

    ```mlir
    %cap = moert.gate %ctx, %logits -> %ids, %w, %slots, %counts tokens %s
        experts 8 <scoring = softmax, top_k = 2, normalize = selected>
        : !moert.view<f32, 512> -> !moert.view<i32, 128>, !moert.view<f32, 128>,
          !moert.view<i32, 128>, !moert.view<i32, 8>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moe_RoutingAttr:$routing,
                       I64Prop:$experts,
                       DefaultValuedProp<I64Prop, "0">:$static_capacity,
                       Moert_In:$logits, Moert_OptIn:$correction_bias,
                       I64:$tokens, Moert_Out:$ids, Moert_Out:$weights,
                       Moert_Out:$slots, Moert_Out:$counts);
  let results = (outs I64:$capacity);
  let callArguments = (ins $ctx,
      (Moert_GateConfig $routing, $experts, $static_capacity), $logits,
      $correction_bias, $tokens, $ids, $weights, $slots, $counts,
      (Moert_Result));
  let assemblyFormat = [{
    $ctx `,` $logits (`correction` $correction_bias^)? `->` $ids `,` $weights
    `,` $slots `,` $counts `tokens` $tokens `experts` $experts $routing
    (`static_capacity` $static_capacity^)? attr-dict `:` type($logits) (`,` type($correction_bias)^)? `->`
    type($ids) `,` type($weights) `,` type($slots) `,` type($counts)
  }];
}

// The stages of moert.gate, one runtime call each (the unfused lowering).
def Moert_GateScoresOp
    : Moert_CallOp<"gate_scores", "moert_gate_scores", "gate"> {
  let summary = "moert_gate_scores: softmax or sigmoid of the logits";
  let description = [{
    Step 1 of `moert.gate`: `scores [S, E]` (f32) from `logits [S, E]`.

    ```mlir
    moert.gate_scores %ctx, %logits -> %scores tokens %s experts 8
        <scoring = softmax, top_k = 2> : !moert.view<f32, 128>
        -> !moert.view<f32, 128>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moe_RoutingAttr:$routing,
                       I64Prop:$experts, Moert_In:$logits, I64:$tokens,
                       Moert_Out:$scores);
  let callArguments = (ins $ctx, (Moert_GateConfig $routing, $experts),
                           $logits, $tokens, $scores);
  let assemblyFormat = [{
    $ctx `,` $logits `->` $scores `tokens` $tokens `experts` $experts
    $routing attr-dict `:` type($logits) `->` type($scores)
  }];
  let hasVerifier = 1;
}

def Moert_GateSelectOp
    : Moert_CallOp<"gate_select", "moert_gate_select", "gate"> {
  let summary = "moert_gate_select: correction bias, group limit, top-k";
  let description = [{
    Steps 2-5 of `moert.gate`: `ids` and unbiased `weights [S, k]` from the
    scores.

    ```mlir
    moert.gate_select %ctx, %scores -> %ids, %w tokens %s experts 8
        <scoring = softmax, top_k = 2> : !moert.view<f32, 128>
        -> !moert.view<i32, 32>, !moert.view<f32, 32>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moe_RoutingAttr:$routing,
                       I64Prop:$experts, Moert_In:$scores,
                       Moert_OptIn:$correction_bias, I64:$tokens,
                       Moert_Out:$ids, Moert_Out:$weights);
  let callArguments = (ins $ctx, (Moert_GateConfig $routing, $experts),
                           $scores, $correction_bias, $tokens, $ids, $weights);
  let assemblyFormat = [{
    $ctx `,` $scores (`correction` $correction_bias^)? `->` $ids `,` $weights
    `tokens` $tokens `experts` $experts $routing attr-dict `:` type($scores)
    (`,` type($correction_bias)^)? `->` type($ids) `,` type($weights)
  }];
  let hasVerifier = 1;
}

def Moert_GateSlotsOp
    : Moert_CallOp<"gate_slots", "moert_gate_slots", "gate"> {
  let summary = "moert_gate_slots: capacity, slots and per-expert counts";
  let description = [{
    Step 6 of `moert.gate`: `slots [S, k]`, `counts [E]` and the capacity.

    ```mlir
    %cap = moert.gate_slots %ctx, %ids, %w -> %slots, %counts tokens %s
        experts 8 <scoring = softmax, top_k = 2> : !moert.view<i32, 32>,
        !moert.view<f32, 32> -> !moert.view<i32, 32>, !moert.view<i32, 8>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moe_RoutingAttr:$routing,
                       I64Prop:$experts, Moert_In:$ids, Moert_In:$weights,
                       I64:$tokens, Moert_Out:$slots, Moert_Out:$counts);
  let results = (outs I64:$capacity);
  let callArguments = (ins $ctx, (Moert_GateConfig $routing, $experts), $ids,
                           $weights, $tokens, $slots, $counts, (Moert_Result));
  let assemblyFormat = [{
    $ctx `,` $ids `,` $weights `->` $slots `,` $counts `tokens` $tokens
    `experts` $experts $routing attr-dict `:` type($ids) `,` type($weights)
    `->` type($slots) `,` type($counts)
  }];
  let hasVerifier = 1;
}

def Moert_GateNormalizeOp
    : Moert_CallOp<"gate_normalize", "moert_gate_normalize", "gate"> {
  let summary = "moert_gate_normalize: normalisation and scaling in place";
  let description = [{
    Steps 7-8 of `moert.gate` on `weights [S, k]` in place; dropped choices
    (`slots < 0`) get weight 0.

    ```mlir
    moert.gate_normalize %ctx, %slots -> %w tokens %s experts 8
        <scoring = softmax, top_k = 2, normalize = selected>
        : !moert.view<i32, 32> -> !moert.view<f32, 32>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moe_RoutingAttr:$routing,
                       I64Prop:$experts, Moert_In:$slots, I64:$tokens,
                       Moert_InOut:$weights);
  let callArguments = (ins $ctx, (Moert_GateConfig $routing, $experts), $slots,
                           $tokens, $weights);
  let assemblyFormat = [{
    $ctx `,` $slots `->` $weights `tokens` $tokens `experts` $experts
    $routing attr-dict `:` type($slots) `->` type($weights)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Token permutation
//===----------------------------------------------------------------------===//

def Moert_DispatchOp
    : Moert_CallOp<"dispatch", "moert_dispatch", "dispatch"> {
  let summary = "moert_dispatch: tokens into the expert-major buffer [E, C, H]";
  let description = [{
    ```mlir
    moert.dispatch %ctx, %x, %ids, %slots -> %buf tokens %s capacity %cap
        hidden 64 top_k 2 experts 8 : !moert.view<f32, 4096>,
        !moert.view<i32, 128>, !moert.view<i32, 128> -> !moert.view<f32, 32768>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x, Moert_In:$ids,
                       Moert_In:$slots, Moert_OptIn:$weights,
                       Moert_Out:$buffer, I64:$tokens, I64Prop:$hidden,
                       I64Prop:$top_k, I64Prop:$experts, I64:$capacity);
  let assemblyFormat = [{
    $ctx `,` $x `,` $ids `,` $slots (`weights` $weights^ `:` type($weights))?
    `->` $buffer `tokens` $tokens `capacity` $capacity `hidden` $hidden
    `top_k` $top_k `experts` $experts attr-dict `:` type($x) `,` type($ids)
    `,` type($slots) `->` type($buffer)
  }];
}

def Moert_CombineOp : Moert_CallOp<"combine", "moert_combine", "combine",
                                   [AttrSizedOperandSegments]> {
  let summary = "moert_combine: weighted scatter-add of expert rows to tokens";
  let description = [{
    `out[s] = addend[s] + sum_j weights[s, j] * y[ids[s, j], slots[s, j]]`;
    `addend` may be the same view as `out`. Without `weights` (printed
    `unweighted` after the slots' type) every kept choice has weight 1.

    ```mlir
    moert.combine %ctx, %y, %ids, %slots, %w -> %out tokens %s capacity %cap
        hidden 64 top_k 2 experts 8 : !moert.view<f32, 32768>,
        !moert.view<i32, 128>, !moert.view<i32, 128>, !moert.view<f32, 128>
        -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$y, Moert_In:$ids,
                       Moert_In:$slots, Moert_OptIn:$weights,
                       Moert_OptIn:$addend, Moert_Out:$out, I64:$tokens,
                       I64Prop:$hidden, I64Prop:$top_k, I64Prop:$experts,
                       I64:$capacity);
  // `unweighted` keeps the types unambiguous when only addend is present.
  let assemblyFormat = [{
    $ctx `,` $y `,` $ids `,` $slots (`,` $weights^)? (`addend` $addend^)? `->`
    $out `tokens` $tokens `capacity` $capacity `hidden` $hidden `top_k`
    $top_k `experts` $experts attr-dict `:` type($y) `,` type($ids) `,`
    type($slots) (`,` type($weights)^):(`unweighted`)?
    (`,` type($addend)^)? `->` type($out)
  }];
}

//===----------------------------------------------------------------------===//
// FFN
//===----------------------------------------------------------------------===//

// moert_ffn_desc: gated (SwiGLU family) when `gate` is present:
// down(act(gate x) * up x); plain otherwise: down(act(up x + b1)) + b2.
defvar Moert_FfnOperands = (ins Moert_OptIn:$gate, Moert_In:$up,
                                Moert_OptIn:$up_bias, Moert_In:$down,
                                Moert_OptIn:$down_bias,
                                Optional<I1>:$down_bias_if,
                                EnumProp<Moe_Activation>:$activation,
                                I64Prop:$hidden, I64Prop:$ffn);
// Its C argument, the descriptor.
defvar Moert_FfnDescArgument = (Moert_FfnDesc $gate, $up, $up_bias, $down,
                                $down_bias, $down_bias_if, $activation,
                                $hidden, $ffn);

def Moert_ExpertsOp : Moert_CallOp<"experts", "moert_experts", "experts",
                                   [AttrSizedOperandSegments]> {
  let summary = "moert_experts: grouped FFN over the expert buffer [E, C, H]";
  let description = [{
    Weights stacked over experts: gate/up `[E, F, H]`, down `[E, H, F]`,
    up_bias `[E, F]`, down_bias `[E, H]`; `ffn` is the rank's F slice (the
    down bias `if` a predicate holds: the first slice adds it). Each
    expert's capacity is split into `blocks` blocks; `rows [E, blocks]` (i32)
    says how many leading rows of each block hold tokens.

    ```mlir
    moert.experts %ctx, silu %in : !moert.view<f32, 32768>
        gate %wg : !moert.view<f32, 65536> up %wu : !moert.view<f32, 65536>
        down %wd : !moert.view<f32, 65536> -> %out : !moert.view<f32, 32768>
        rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1
        hidden 64 ffn 128
    ```
  }];
  let arguments = !con((ins Moert_ContextType:$ctx), Moert_FfnOperands,
                       (ins Moert_In:$input, Moert_Out:$output,
                            Moert_OptIn:$rows, I64Prop:$experts,
                            I64:$capacity, I64Prop:$blocks));
  let callArguments = (ins $ctx, Moert_FfnDescArgument, $input, $output, $rows,
                           $experts, $capacity, $blocks);
  let assemblyFormat = [{
    $ctx `,` $activation $input `:` type($input)
    (`gate` $gate^ `:` type($gate))? `up` $up `:` type($up)
    (`bias` $up_bias^ `:` type($up_bias))? `down` $down `:` type($down)
    (`bias` $down_bias^ `:` type($down_bias))? (`if` $down_bias_if^)? `->`
    $output `:` type($output)
    (`rows` $rows^ `:` type($rows))? `capacity` $capacity `experts` $experts
    `blocks` $blocks `hidden` $hidden `ffn` $ffn attr-dict
  }];
}

// The stages of a GATED moert.experts (fuse=false): experts_linear for
// gate, up and down, activation and multiply on fp32 [E, C, F] buffers.
def Moert_ExpertsLinearOp
    : Moert_CallOp<"experts_linear", "moert_experts_linear", "experts"> {
  let summary = "moert_experts_linear: out[E,C,n] = in[E,C,k] . w[E,n,k]^T";
  let description = [{
    One grouped GEMM stage of a gated expert FFN over the rows `rows`
    selects (as in `moert.experts`); the other rows of `out` are set to 0.

    ```mlir
    moert.experts_linear %ctx, %wg : !moert.view<f32, 65536> in %in
        : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384>
        rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1
        n 128 k 64
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$weight,
                       Moert_In:$input, Moert_Out:$output, Moert_OptIn:$rows,
                       I64Prop:$experts, I64:$capacity, I64Prop:$blocks,
                       I64Prop:$n, I64Prop:$k);
  let assemblyFormat = [{
    $ctx `,` $weight `:` type($weight) `in` $input `:` type($input) `->`
    $output `:` type($output) (`rows` $rows^ `:` type($rows))? `capacity`
    $capacity `experts` $experts `blocks` $blocks `n` $n `k` $k attr-dict
  }];
}

def Moert_ActivationOp
    : Moert_CallOp<"activation", "moert_activation", "experts"> {
  let summary = "moert_activation: out = act(x) over count elements";
  let description = [{
    `out` may be `x`.

    ```mlir
    moert.activation %ctx, silu %h -> %h count %n
        : !moert.view<f32, 16384> -> !moert.view<f32, 16384>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx,
                       EnumProp<Moe_Activation>:$activation, Moert_In:$x,
                       Moert_Out:$out, I64:$count);
  let assemblyFormat = [{
    $ctx `,` $activation $x `->` $out `count` $count attr-dict `:` type($x)
    `->` type($out)
  }];
}

def Moert_MultiplyOp
    : Moert_CallOp<"multiply", "moert_multiply", "experts"> {
  let summary = "moert_multiply: out = a * b over count elements";
  let description = [{
    The gating product of a gated FFN; `out` may be `a` or `b`.

    ```mlir
    moert.multiply %ctx, %h, %u -> %h count %n : !moert.view<f32, 16384>,
        !moert.view<f32, 16384> -> !moert.view<f32, 16384>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$lhs, Moert_In:$rhs,
                       Moert_Out:$out, I64:$count);
  let assemblyFormat = [{
    $ctx `,` $lhs `,` $rhs `->` $out `count` $count attr-dict `:` type($lhs)
    `,` type($rhs) `->` type($out)
  }];
}

def Moert_SwigluClampedOp
    : Moert_CallOp<"swiglu_clamped", "moert_swiglu_clamped", "experts"> {
  let summary = "moert_swiglu_clamped: gpt-oss's gated combination";
  let description = [{
    `out = (clamp(up, -limit, limit) + 1) * g * sigmoid(alpha * g)` with
    `g = min(gate, limit)` over `count` elements; `out` may be `gate` or `up`.

    ```mlir
    moert.swiglu_clamped %ctx, %h, %u -> %h count %n alpha 1.702 limit 7.0
        : !moert.view<f32, 16384>, !moert.view<f32, 16384>
        -> !moert.view<f32, 16384>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$gate, Moert_In:$up,
                       Moert_Out:$out, I64:$count, F32Attr:$alpha,
                       F32Attr:$limit);
  let assemblyFormat = [{
    $ctx `,` $gate `,` $up `->` $out `count` $count `alpha` $alpha `limit`
    $limit attr-dict `:` type($gate) `,` type($up) `->` type($out)
  }];
}

def Moert_ExpertsBiasAddOp
    : Moert_CallOp<"experts_bias_add", "moert_experts_bias_add", "experts"> {
  let summary = "moert_experts_bias_add: out[e,c,:] = x[e,c,:] + bias[e,:]";
  let description = [{
    The per-expert bias of a stage of a gated expert FFN, added over the rows
    `rows` selects (as in `moert.experts_linear`); the other rows keep `x`'s
    values. `out` may be `x`.

    ```mlir
    moert.experts_bias_add %ctx, %b : !moert.view<f32, 1024> in %h
        : !moert.view<f32, 16384> -> %h : !moert.view<f32, 16384>
        rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1
        n 128
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$bias,
                       Moert_In:$input, Moert_Out:$output, Moert_OptIn:$rows,
                       I64Prop:$experts, I64:$capacity, I64Prop:$blocks,
                       I64Prop:$n);
  let assemblyFormat = [{
    $ctx `,` $bias `:` type($bias) `in` $input `:` type($input) `->`
    $output `:` type($output) (`rows` $rows^ `:` type($rows))? `capacity`
    $capacity `experts` $experts `blocks` $blocks `n` $n attr-dict
  }];
}

def Moert_FusedExpertsOp
    : Moert_CallOp<"fused_experts", "moert_fused_experts", "experts",
                   [AttrSizedOperandSegments]> {
  let summary = "moert_fused_experts: a packed gated FFN over [E, C, H]";
  let description = [{
    `moert.experts` for a GATED FFN whose gate and up weights are packed
    into `gate_up [E, 2F, H]` (each expert's gate rows, then its up rows;
    packed by the `dst_expert_stride` of its two `moert.load_weight`s),
    `down [E, H, F]`. With `shared(...)` a shared expert (`gate_up [2Fs, H]`,
    `down [H, Fs]`) runs in the same grouped GEMMs on this rank's tokens:
    `shared_output = FFN(shared_input)`.

    ```mlir
    moert.fused_experts %ctx, silu %in : !moert.view<f32, 8192>
        gate_up %wgu : !moert.view<f32, 131072> down %wd
        : !moert.view<f32, 65536> -> %out : !moert.view<f32, 8192>
        rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1
        hidden 64 ffn 128
        shared(%x : !moert.view<f32, 1024> gate_up %sgu
        : !moert.view<f32, 8192> down %sd : !moert.view<f32, 4096> -> %sh
        : !moert.view<f32, 1024> tokens %s ffn 64)
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx,
                       EnumProp<Moe_Activation>:$activation, I64Prop:$hidden,
                       I64Prop:$ffn, Moert_In:$gate_up, Moert_In:$down,
                       Moert_In:$input, Moert_Out:$output, Moert_OptIn:$rows,
                       I64Prop:$experts, I64:$capacity, I64Prop:$blocks,
                       DefaultValuedProp<I64Prop, "0">:$shared_ffn,
                       Moert_OptIn:$shared_gate_up, Moert_OptIn:$shared_down,
                       Moert_OptIn:$shared_input, Moert_OptOut:$shared_output,
                       Optional<I64>:$tokens);
  let callArguments = (ins $ctx,
      (Moert_PackedFfnDesc $activation, $hidden, $ffn, $gate_up, $down),
      $input, $output, $rows, $experts, $capacity, $blocks,
      (Moert_SharedFfn $activation, $hidden, $shared_ffn, $shared_gate_up,
                       $shared_down, $shared_input, $shared_output, $tokens));
  let assemblyFormat = [{
    $ctx `,` $activation $input `:` type($input) `gate_up` $gate_up `:`
    type($gate_up) `down` $down `:` type($down) `->` $output `:`
    type($output) (`rows` $rows^ `:` type($rows))? `capacity` $capacity
    `experts` $experts `blocks` $blocks `hidden` $hidden `ffn` $ffn
    (`shared` `(` $shared_input^ `:` type($shared_input) `gate_up`
     $shared_gate_up `:` type($shared_gate_up) `down` $shared_down `:`
     type($shared_down) `->` $shared_output `:` type($shared_output) `tokens`
     $tokens `ffn` $shared_ffn `)`)? attr-dict
  }];
}

def Moert_QuantizedExpertsOp
    : Moert_CallOp<"quantized_experts", "moert_quantized_experts", "experts"> {
  let summary = "moert_quantized_experts: a gated FFN of fp8 block-scaled "
                "weights over [E, C, H]";
  let description = [{
    `moert.experts` for a GATED FFN whose gate, up (`[E, F, H]`) and down
    (`[E, H, F]`) weights stay quantized in memory, dequantized inside the
    GEMM tile: `fp8_e4m3_block` data `f8E4M3FN` with f32 scales
    `[E, ceil(rows / R), ceil(cols / C)]` for blocks of R x C, or `mxfp4`
    (R = 1, C = 32) data `ui8` (two e2m1 a byte, `[E, rows, cols / 2]`) with
    `ui8` e8m0 scales `[E, rows, cols / 32]`. A dense or shared FFN is one
    expert whose capacity is the token count.

    ```mlir
    moert.quantized_experts %ctx, silu %in : !moert.view<f32, 8192>
        gate %wg : !moert.view<f8E4M3FN, 65536> scales %sg
        : !moert.view<f32, 8> up %wu : !moert.view<f8E4M3FN, 65536>
        scales %su : !moert.view<f32, 8> down %wd
        : !moert.view<f8E4M3FN, 65536> scales %sd : !moert.view<f32, 8>
        -> %out : !moert.view<f32, 8192> rows %counts : !moert.view<i32, 8>
        capacity %cap experts 8 blocks 1 hidden 64 ffn 128 fp8_e4m3_block
        block_rows 128 block_cols 128
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx,
                       EnumProp<Moe_Activation>:$activation, I64Prop:$hidden,
                       I64Prop:$ffn, EnumProp<Moert_WeightFormat>:$format,
                       I64Prop:$block_rows, I64Prop:$block_cols,
                       Moert_In:$gate, Moert_In:$gate_scales, Moert_In:$up,
                       Moert_In:$up_scales, Moert_In:$down,
                       Moert_In:$down_scales, Moert_In:$input,
                       Moert_Out:$output, Moert_OptIn:$rows, I64Prop:$experts,
                       I64:$capacity, I64Prop:$blocks);
  let callArguments = (ins $ctx,
      (Moert_QuantizedFfnDesc $format, $block_rows, $block_cols, $activation,
                              $hidden,
                              $ffn, $gate, $gate_scales, $up, $up_scales,
                              $down, $down_scales),
      $input, $output, $rows, $experts, $capacity, $blocks);
  let assemblyFormat = [{
    $ctx `,` $activation $input `:` type($input) `gate` $gate `:` type($gate)
    `scales` $gate_scales `:` type($gate_scales) `up` $up `:` type($up)
    `scales` $up_scales `:` type($up_scales) `down` $down `:` type($down)
    `scales` $down_scales `:` type($down_scales) `->` $output `:`
    type($output) (`rows` $rows^ `:` type($rows))? `capacity` $capacity
    `experts` $experts `blocks` $blocks `hidden` $hidden `ffn` $ffn $format
    `block_rows` $block_rows `block_cols` $block_cols attr-dict
  }];
}

def Moert_DenseFfnOp : Moert_CallOp<"dense_ffn", "moert_dense_ffn",
                                    "dense_ffn", [AttrSizedOperandSegments]> {
  let summary = "moert_dense_ffn: the FFN on x [S, H] without routing";
  let description = [{
    Weights: gate/up `[F, H]`, down `[H, F]`, up_bias `[F]`, down_bias `[H]`
    (passed only `if` the predicate holds: one slice of a tensor-parallel FFN
    adds it).

    ```mlir
    moert.dense_ffn %ctx, gelu %x : !moert.view<f32, 4096>
        up %w1 : !moert.view<f32, 8192> bias %b1 : !moert.view<f32, 128>
        down %w2 : !moert.view<f32, 8192> bias %b2 : !moert.view<f32, 64>
        -> %y : !moert.view<f32, 4096> tokens %s hidden 64 ffn 128
    ```
  }];
  let arguments = !con((ins Moert_ContextType:$ctx), Moert_FfnOperands,
                       (ins Moert_In:$input, Moert_Out:$output, I64:$tokens));
  let callArguments = (ins $ctx, Moert_FfnDescArgument, $input, $output,
                           $tokens);
  let assemblyFormat = [{
    $ctx `,` $activation $input `:` type($input)
    (`gate` $gate^ `:` type($gate))? `up` $up `:` type($up)
    (`bias` $up_bias^ `:` type($up_bias))? `down` $down `:` type($down)
    (`bias` $down_bias^ `:` type($down_bias))? (`if` $down_bias_if^)? `->`
    $output `:` type($output)
    `tokens` $tokens `hidden` $hidden `ffn` $ffn attr-dict
  }];
}

def Moert_FusedCombineOp
    : Moert_CallOp<"fused_combine", "moert_fused_combine", "combine",
                   [AttrSizedOperandSegments]> {
  let summary = "moert_fused_combine: combine + residual mix + shared add "
                "+ addend in one pass";
  let description = [{
    Per token, in fp32: the weighted sum of `moert.combine`, then with
    `mix(...)` the PR-MoE coefficient mix with `mlp`, then with `shared(...)`
    the (sigmoid-gated when `gate` is given) shared add, then `addend`.
    `addend` may be the same view as `out`, and so may `x`.

    ```mlir
    moert.fused_combine %ctx, %y, %ids, %slots, %w
        shared(%sh : !moert.view<f32, 4096> gate %wsg : !moert.view<f32, 64>)
        x(%x : !moert.view<f32, 4096>) addend(%x : !moert.view<f32, 4096>)
        -> %x tokens %s capacity %cap hidden 64 top_k 2 experts 8
        : !moert.view<f32, 32768>, !moert.view<i32, 128>,
        !moert.view<i32, 128>, !moert.view<f32, 128> -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$y, Moert_In:$ids,
                       Moert_In:$slots, Moert_OptIn:$weights,
                       Moert_OptIn:$mlp_output, Moert_OptIn:$coef_weight,
                       Moert_OptIn:$coef_bias, Moert_OptIn:$shared,
                       Moert_OptIn:$shared_gate_weight, Moert_OptIn:$x,
                       Moert_OptIn:$addend, Moert_Out:$out, I64:$tokens,
                       I64Prop:$hidden, I64Prop:$top_k, I64Prop:$experts,
                       I64:$capacity);
  let assemblyFormat = [{
    $ctx `,` $y `,` $ids `,` $slots (`,` $weights^)?
    (`mix` `(` $mlp_output^ `:` type($mlp_output) `,` $coef_weight `:`
     type($coef_weight) (`bias` $coef_bias^ `:` type($coef_bias))? `)`)?
    (`shared` `(` $shared^ `:` type($shared)
     (`gate` $shared_gate_weight^ `:` type($shared_gate_weight))? `)`)?
    (`x` `(` $x^ `:` type($x) `)`)?
    (`addend` `(` $addend^ `:` type($addend) `)`)? `->` $out `tokens` $tokens
    `capacity` $capacity `hidden` $hidden `top_k` $top_k `experts` $experts
    attr-dict `:` type($y) `,` type($ids) `,` type($slots)
    (`,` type($weights)^)? `->` type($out)
  }];
  let hasVerifier = 1;
}

// The GEMM stage of quantized gated experts that stay staged (biases or
// swiglu_clamped: gpt-oss's MXFP4 experts).
def Moert_QuantizedExpertsLinearOp
    : Moert_CallOp<"quantized_experts_linear",
                   "moert_quantized_experts_linear", "experts"> {
  let summary = "moert_quantized_experts_linear: out[E,C,n] = in[E,C,k] . "
                "w[E,n,k]^T, w quantized";
  let description = [{
    `moert.experts_linear` with a weight that stays quantized in memory
    (layouts as in `moert.quantized_experts`), dequantized inside the GEMM
    tile. Rows `rows` does not select are set to 0.

    ```mlir
    moert.quantized_experts_linear %ctx, mxfp4 block_rows 1 block_cols 32
        %wg : !moert.view<ui8, 2048> scales %sg : !moert.view<ui8, 128>
        in %in : !moert.view<f32, 8192> -> %h : !moert.view<f32, 16384>
        rows %counts : !moert.view<i32, 8> capacity %cap experts 8 blocks 1
        n 128 k 64
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx,
                       EnumProp<Moert_WeightFormat>:$format,
                       I64Prop:$block_rows, I64Prop:$block_cols,
                       Moert_In:$weight, Moert_In:$weight_scales,
                       Moert_In:$input, Moert_Out:$output, Moert_OptIn:$rows,
                       I64Prop:$experts, I64:$capacity, I64Prop:$blocks,
                       I64Prop:$n, I64Prop:$k);
  let assemblyFormat = [{
    $ctx `,` $format `block_rows` $block_rows `block_cols` $block_cols
    $weight `:` type($weight) `scales` $weight_scales `:`
    type($weight_scales) `in` $input `:` type($input) `->` $output `:`
    type($output) (`rows` $rows^ `:` type($rows))? `capacity` $capacity
    `experts` $experts `blocks` $blocks `n` $n `k` $k attr-dict
  }];
}

//===----------------------------------------------------------------------===//
// Elementwise mixes
//===----------------------------------------------------------------------===//

def Moert_ResidualMixOp
    : Moert_CallOp<"residual_mix", "moert_residual_mix", "combine"> {
  let summary = "moert_residual_mix: PR-MoE coefficient mix";
  let description = [{
    `out = moe * c[:, 0] + mlp * c[:, 1]`, `c = softmax(x . wc[2, H]^T + bc)`.

    ```mlir
    moert.residual_mix %ctx, %moe, %mlp coefficient(%x, %wc bias %bc) -> %out
        tokens %s hidden 64 : !moert.view<f32, 4096>, !moert.view<f32, 4096>,
        !moert.view<f32, 4096>, !moert.view<f32, 128>, !moert.view<f32, 2>
        -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x,
                       Moert_In:$coef_weight, Moert_OptIn:$coef_bias,
                       Moert_In:$moe_output, Moert_In:$mlp_output,
                       Moert_Out:$out, I64:$tokens, I64Prop:$hidden);
  let assemblyFormat = [{
    $ctx `,` $moe_output `,` $mlp_output `coefficient` `(` $x `,` $coef_weight
    (`bias` $coef_bias^)? `)` `->` $out `tokens` $tokens `hidden` $hidden
    attr-dict `:` type($moe_output) `,` type($mlp_output) `,` type($x) `,`
    type($coef_weight) (`,` type($coef_bias)^)? `->` type($out)
  }];
}

def Moert_SharedAddOp : Moert_CallOp<"shared_add", "moert_shared_add",
                                     "combine", [AttrSizedOperandSegments]> {
  let summary = "moert_shared_add: routed + (sigmoid(x . w_sg^T) *) shared";
  let description = [{
    Without `gated(...)`: DeepSeek's plain sum. `out` may be `routed`.

    ```mlir
    moert.shared_add %ctx, %routed, %shared gated(%x, %wsg) -> %routed
        tokens %s hidden 64 : !moert.view<f32, 4096>, !moert.view<f32, 4096>,
        !moert.view<f32, 4096>, !moert.view<f32, 64> -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$routed,
                       Moert_In:$shared, Moert_OptIn:$x,
                       Moert_OptIn:$gate_weight, Moert_Out:$out, I64:$tokens,
                       I64Prop:$hidden);
  let assemblyFormat = [{
    $ctx `,` $routed `,` $shared (`gated` `(` $x^ `,` $gate_weight `)`)? `->`
    $out `tokens` $tokens `hidden` $hidden attr-dict `:` type($routed) `,`
    type($shared) (`,` type($x)^ `,` type($gate_weight))? `->` type($out)
  }];
}

def Moert_AddOp : Moert_CallOp<"add", "moert_add", "combine"> {
  let summary = "moert_add: out = a + b over count elements";
  let description = [{
    The layer's residual connection; `out` may be `a` or `b`.

    ```mlir
    moert.add %ctx, %x, %y -> %x count %n
        : !moert.view<f32, 4096>, !moert.view<f32, 4096> -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$lhs, Moert_In:$rhs,
                       Moert_Out:$out, I64:$count);
  let assemblyFormat = [{
    $ctx `,` $lhs `,` $rhs `->` $out `count` $count attr-dict `:` type($lhs)
    `,` type($rhs) `->` type($out)
  }];
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

def Moert_RmsNormOp : Moert_CallOp<"rms_norm", "moert_rms_norm", "norm"> {
  let summary = "moert_rms_norm: out = weight * (x / rms(x)) per token";
  let description = [{
    Per token of `x [S, H]`: `x * rsqrt(mean(x^2) + epsilon)` in fp32,
    rounded to `x`'s dtype, then times `weight [H]` (the Hugging Face
    RMSNorm of Llama, Mixtral, Qwen and DeepSeek). `out` may be `x`.

    ```mlir
    moert.rms_norm %ctx, %x, %w -> %x tokens %s hidden 64 epsilon 1.0e-06
        : !moert.view<bf16, 1024>, !moert.view<bf16, 64>
        -> !moert.view<bf16, 1024>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x, Moert_In:$weight,
                       Moert_Out:$out, I64:$tokens, I64Prop:$hidden,
                       F32Attr:$epsilon);
  let assemblyFormat = [{
    $ctx `,` $x `,` $weight `->` $out `tokens` $tokens `hidden` $hidden
    `epsilon` $epsilon attr-dict `:` type($x) `,` type($weight) `->`
    type($out)
  }];
}

//===----------------------------------------------------------------------===//
// The decoder around the FFN stack
//===----------------------------------------------------------------------===//

def Moert_LinearOp : Moert_CallOp<"linear", "moert_linear", "linear"> {
  let summary = "moert_linear: out[S, n] = x[S, k] . w[n, k]^T (+ bias)";
  let description = [{
    Attention projections and the LM head (f32 `out`).

    ```mlir
    moert.linear %ctx, %x, %wq bias %bq -> %q tokens %s n 64 k 64
        : !moert.view<f32, 4096>, !moert.view<f32, 4096>,
          !moert.view<f32, 64> -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x, Moert_In:$weight,
                       Moert_OptIn:$bias, Moert_Out:$out, I64:$tokens,
                       I64Prop:$n, I64Prop:$k);
  let assemblyFormat = [{
    $ctx `,` $x `,` $weight (`bias` $bias^)? `->` $out `tokens` $tokens `n` $n
    `k` $k attr-dict `:` type($x) `,` type($weight) (`,` type($bias)^)? `->`
    type($out)
  }];
}

def Moert_EmbeddingOp
    : Moert_CallOp<"embedding", "moert_embedding", "embedding"> {
  let summary = "moert_embedding: out[s] = table[ids[s]]";
  let description = [{
    The token embedding (`vocab` a constant), and the rows that sample
    (`moe.gather_rows`: the table is the step's hidden states, `vocab` its
    token count).

    ```mlir
    moert.embedding %ctx, %ids, %table -> %x tokens %s vocab %v hidden 64
        : !moert.view<i32, 64>, !moert.view<f32, 6144> -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$ids, Moert_In:$table,
                       Moert_Out:$out, I64:$tokens, I64:$vocab,
                       I64Prop:$hidden);
  let assemblyFormat = [{
    $ctx `,` $ids `,` $table `->` $out `tokens` $tokens `vocab` $vocab
    `hidden` $hidden attr-dict `:` type($ids) `,` type($table) `->` type($out)
  }];
}

def Moert_RopeOp : Moert_CallOp<"rope", "moert_rope", "attention"> {
  let summary = "moert_rope: rotary embedding of [S, heads, D] in place";
  let description = [{
    ```mlir
    moert.rope %ctx, %q positions %pos tokens %s heads 4 head_dim 16
        <theta = 1.0e+04> : !moert.view<f32, 4096>, !moert.view<i32, 64>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moe_RopeAttr:$rope,
                       Moert_InOut:$x, Moert_In:$positions, I64:$tokens,
                       I64Prop:$heads, I64Prop:$head_dim);
  let callArguments = (ins $ctx, (Moert_RopeConfig $rope), $x, $positions,
                           $tokens, $heads, $head_dim);
  let assemblyFormat = [{
    $ctx `,` $x `positions` $positions `tokens` $tokens `heads` $heads
    `head_dim` $head_dim $rope attr-dict `:` type($x) `,` type($positions)
  }];
}

// The extents every KV cache call names (runtime/common/KvCache.h).
defvar Moert_CacheExtents = (ins I64Prop:$kv_heads, I64Prop:$head_dim,
                                 I64Prop:$max_batch, I64Prop:$max_seq);

def Moert_KvAppendOp
    : Moert_CallOp<"kv_append", "moert_kv_append", "attention"> {
  let summary = "moert_kv_append: k, v into the cache at (sequence, position)";
  let description = [{
    ```mlir
    moert.kv_append %ctx, %k, %v -> %cache at %seq, %pos tokens %s
        kv_heads 2 head_dim 16 max_batch 4 max_seq 64
        : !moert.view<f32, 2048>, !moert.view<f32, 2048>,
          !moert.view<i32, 64>, !moert.view<i32, 64> -> !moert.view<f32, 16384>
    ```
  }];
  let arguments = !con((ins Moert_ContextType:$ctx, Moert_In:$k, Moert_In:$v,
                            Moert_InOut:$cache, Moert_In:$sequences,
                            Moert_In:$positions, I64:$tokens),
                       Moert_CacheExtents);
  let assemblyFormat = [{
    $ctx `,` $k `,` $v `->` $cache `at` $sequences `,` $positions `tokens`
    $tokens `kv_heads` $kv_heads `head_dim` $head_dim `max_batch` $max_batch
    `max_seq` $max_seq attr-dict `:` type($k) `,` type($v) `,`
    type($sequences) `,` type($positions) `->` type($cache)
  }];
}

def Moert_AttentionOp
    : Moert_CallOp<"attention", "moert_attention", "attention"> {
  let summary = "moert_attention: causal attention of q over the cache";
  let description = [{
    Optional per-head `sinks` ([heads] extra softmax logits with no value,
    gpt-oss) and a sliding `window` (0: none; the token and the window - 1
    positions before it).

    ```mlir
    moert.attention %ctx, %q, %cache at %seq, %pos sinks %sk -> %o tokens %s
        heads 4 kv_heads 2 head_dim 16 max_batch 4 max_seq 64 scale 0.25
        window 8
        : !moert.view<f32, 4096>, !moert.view<f32, 16384>,
          !moert.view<i32, 64>, !moert.view<i32, 64>, !moert.view<f32, 4>
          -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$q, Moert_In:$cache,
                       Moert_In:$sequences, Moert_In:$positions,
                       Moert_OptIn:$sinks, Moert_Out:$out, I64:$tokens,
                       I64Prop:$heads, I64Prop:$kv_heads, I64Prop:$head_dim,
                       I64Prop:$max_batch, I64Prop:$max_seq, F32Attr:$scale,
                       DefaultValuedProp<I64Prop, "0">:$window);
  let assemblyFormat = [{
    $ctx `,` $q `,` $cache `at` $sequences `,` $positions
    (`sinks` $sinks^)? `->` $out `tokens`
    $tokens `heads` $heads `kv_heads` $kv_heads `head_dim` $head_dim
    `max_batch` $max_batch `max_seq` $max_seq `scale` $scale
    (`window` $window^)? attr-dict `:`
    type($q) `,` type($cache) `,` type($sequences) `,` type($positions)
    (`,` type($sinks)^)? `->` type($out)
  }];
}

def Moert_ArgmaxOp : Moert_CallOp<"argmax", "moert_argmax", "sampling"> {
  let summary = "moert_argmax: greedy next ids, ties to the lower index";
  let description = [{
    ```mlir
    moert.argmax %ctx, %logits -> %ids tokens %s vocab 96
        : !moert.view<f32, 6144> -> !moert.view<i32, 64>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$logits,
                       Moert_Out:$ids, I64:$tokens, I64Prop:$vocab);
  let assemblyFormat = [{
    $ctx `,` $logits `->` $ids `tokens` $tokens `vocab` $vocab attr-dict `:`
    type($logits) `->` type($ids)
  }];
}

//===----------------------------------------------------------------------===//
// DeepSeek multi-head latent attention
//===----------------------------------------------------------------------===//

// The extents every latent cache call names (runtime/common/LatentCache.h).
defvar Moert_LatentCacheExtents = (ins I64Prop:$rank, I64Prop:$rope_dim,
                                       I64Prop:$max_batch, I64Prop:$max_seq);

def Moert_LatentAppendOp
    : Moert_CallOp<"latent_append", "moert_latent_append", "attention"> {
  let summary = "moert_latent_append: normalised latent and rotated k_pe "
                "into the latent cache";
  let description = [{
    `kv` is `x . kv_a_proj^T` `[S, rank + rope_dim]`.

    ```mlir
    moert.latent_append %ctx, %kv, %norm -> %cache at %seq, %pos tokens %s
        rank 16 rope_dim 8 max_batch 4 max_seq 64 epsilon 1.0e-06
        <theta = 1.0e+04> : !moert.view<f32, 1536>, !moert.view<f32, 16>,
          !moert.view<i32, 64>, !moert.view<i32, 64> -> !moert.view<f32, 6144>
    ```
  }];
  let arguments = !con((ins Moert_ContextType:$ctx, Moe_RopeAttr:$rope,
                            Moert_In:$kv, Moert_In:$norm, Moert_InOut:$cache,
                            Moert_In:$sequences, Moert_In:$positions,
                            I64:$tokens),
                       Moert_LatentCacheExtents, (ins F32Attr:$epsilon));
  let callArguments = (ins $ctx, (Moert_RopeConfig $rope), $kv, $norm, $cache,
                           $sequences, $positions, $tokens, $rank, $rope_dim,
                           $max_batch, $max_seq, $epsilon);
  let assemblyFormat = [{
    $ctx `,` $kv `,` $norm `->` $cache `at` $sequences `,` $positions
    `tokens` $tokens `rank` $rank `rope_dim` $rope_dim `max_batch` $max_batch
    `max_seq` $max_seq `epsilon` $epsilon $rope attr-dict `:` type($kv) `,`
    type($norm) `,` type($sequences) `,` type($positions) `->` type($cache)
  }];
}

def Moert_LatentAttentionOp
    : Moert_CallOp<"latent_attention", "moert_latent_attention", "attention"> {
  let summary = "moert_latent_attention: absorbed causal attention over the "
                "latent cache";
  let description = [{
    `q` `[S, heads, nope_dim + rope_dim]` (q_pe rotated by the call), `kv_b`
    `[heads * (nope_dim + v_dim), rank]`, `out` `[S, heads, v_dim]`.

    ```mlir
    moert.latent_attention %ctx, %q, %wkvb, %cache at %seq, %pos -> %o
        tokens %s heads 4 nope_dim 8 v_dim 16 rank 16 rope_dim 8
        max_batch 4 max_seq 64 scale 0.25 <theta = 1.0e+04>
        : !moert.view<f32, 4096>, !moert.view<f32, 1536>,
          !moert.view<f32, 6144>, !moert.view<i32, 64>, !moert.view<i32, 64>
          -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = !con((ins Moert_ContextType:$ctx, Moe_RopeAttr:$rope,
                            Moert_In:$q, Moert_In:$kv_b, Moert_In:$cache,
                            Moert_In:$sequences, Moert_In:$positions,
                            Moert_Out:$out, I64:$tokens, I64Prop:$heads,
                            I64Prop:$nope_dim, I64Prop:$v_dim),
                       Moert_LatentCacheExtents, (ins F32Attr:$scale));
  let callArguments = (ins $ctx, (Moert_RopeConfig $rope), $q, $kv_b, $cache,
                           $sequences, $positions, $out, $tokens, $heads,
                           $nope_dim, $rope_dim, $v_dim, $rank, $max_batch,
                           $max_seq, $scale);
  let assemblyFormat = [{
    $ctx `,` $q `,` $kv_b `,` $cache `at` $sequences `,` $positions `->` $out
    `tokens` $tokens `heads` $heads `nope_dim` $nope_dim `v_dim` $v_dim
    `rank` $rank `rope_dim` $rope_dim `max_batch` $max_batch `max_seq`
    $max_seq `scale` $scale $rope attr-dict `:` type($q) `,` type($kv_b) `,`
    type($cache) `,` type($sequences) `,` type($positions) `->` type($out)
  }];
}

//===----------------------------------------------------------------------===//
// Rank groups and collectives
//===----------------------------------------------------------------------===//

def Moert_KeepGroupOp
    : Moert_CallOp<"keep_group", "moert_model_keep_group", ""> {
  let summary = "creates this rank's row of `groups` and keeps it in `slot`";
  let description = [{
    In the model's init: `groups` partitions (part of) the world into rows
    of equal size; each rank creates the group of its own row
    (moert_group_create) and the context keeps it under `slot`
    (moert_context_keep_group) for the steps to look up with `moert.group`.
    Every rank of the world that runs this op must appear in exactly one
    row.

    ```mlir
    moert.keep_group %ctx [[0, 1], [2, 3]] slot 0
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, I64ElementsAttr:$groups,
                       I32Prop:$slot);
  let callArguments = (ins $ctx, (Moert_RankTable $groups), $slot);
  let assemblyFormat = [{
    $ctx custom<RankGroups>($groups) `slot` $slot attr-dict
  }];
}

def Moert_GroupOp : Moert_CallOp<"group", "moert_context_group", ""> {
  let summary = "the group kept in `slot` (moert_context_group)";
  let description = [{
    A step's collectives run on groups its init kept: looking one up is
    local, so a step creates no group (creating one is collective over the
    world on CUDA and cannot be captured in a graph).

    ```mlir
    %g = moert.group %ctx slot 0
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, I32Prop:$slot);
  let results = (outs Moert_GroupType:$group);
  let callArguments = (ins $ctx, $slot, (Moert_Result));
  let assemblyFormat = "$ctx `slot` $slot attr-dict";
}

// The expert-major exchange; `extraArguments` follow the common ones.
class Moert_AllToAllBase<string mnemonic, string callee, dag extraArguments,
                         string extraFormat>
    : Moert_CallOp<mnemonic, callee, "exchange"> {
  let arguments = !con((ins Moert_ContextType:$ctx, Moert_GroupType:$group,
                            EnumProp<Moe_AllToAllDirection>:$direction,
                            EnumProp<Moe_AllToAllVariant>:$algorithm,
                            Moert_In:$send, Moert_Out:$recv,
                            I64Prop:$experts_local, I64:$capacity,
                            I64Prop:$hidden),
                       extraArguments);
  let assemblyFormat = [{
    $ctx `,` $group $direction $algorithm $send `->` $recv `experts_local`
    $experts_local `capacity` $capacity `hidden` $hidden }] # extraFormat # [{
    attr-dict `:` type($send) `->` type($recv)
  }];
}

def Moert_AllToAllOp : Moert_AllToAllBase<"all_to_all", "moert_all_to_all",
                                          (ins), ""> {
  let summary = "moert_all_to_all: expert-major exchange within a group";
  let description = [{
    `to_experts`: send `[G * E_local, C, H]` -> recv `[E_local, G * C, H]`;
    `from_experts` is the inverse. `send` and `recv` must not overlap.

    ```mlir
    moert.all_to_all %ctx, %g to_experts flat %send -> %recv
        experts_local 2 capacity %cap hidden 64
        : !moert.view<f32, 32768> -> !moert.view<f32, 32768>
    ```
  }];
}

def Moert_AllToAllSlicedOp
    : Moert_AllToAllBase<"all_to_all_sliced", "moert_all_to_all_sliced",
                         (ins I64Prop:$slices), "`slices` $slices"> {
  let summary = "moert_all_to_all_sliced: the exchange of sliced experts";
  let description = [{
    `moert.all_to_all` where each expert is split over `slices` consecutive
    members: `send` is `[G / slices * E_local, C, H]`, every member's rows
    reach all holders of the expert, and `from_experts` sums the holders'
    partial outputs.

    ```mlir
    moert.all_to_all_sliced %ctx, %g from_experts flat %partial -> %rows
        experts_local 2 capacity %cap hidden 64 slices 2
        : !moert.view<f32, 32768> -> !moert.view<f32, 32768>
    ```
  }];
}

def Moert_AllReduceOp
    : Moert_CallOp<"all_reduce", "moert_all_reduce", "exchange"> {
  let summary = "moert_all_reduce: recv = reduce of send over the group";
  let description = [{
    `count` elements; `send` may be `recv` (in place).

    ```mlir
    moert.all_reduce %ctx, %g sum %part -> %part count %n
        : !moert.view<f32, 4096> -> !moert.view<f32, 4096>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_GroupType:$group,
                       EnumProp<Moert_ReduceOp>:$op, Moert_In:$send,
                       Moert_Out:$recv, I64:$count);
  let assemblyFormat = [{
    $ctx `,` $group $op $send `->` $recv `count` $count attr-dict `:`
    type($send) `->` type($recv)
  }];
}

// Tensor-parallel dense MLPs: gather the group's tokens, sum partial outputs
// back to the token owners.
class Moert_GatherScatterOp<string mnemonic, string summaryText,
                            string example>
    : Moert_CallOp<mnemonic, "moert_" # mnemonic, "exchange"> {
  let summary = summaryText;
  let description = "`count` is the per-member block in elements; `send` and "
                    "`recv` must not overlap.\n\n```mlir\n" # example #
                    "\n```";
  let arguments = (ins Moert_ContextType:$ctx, Moert_GroupType:$group,
                       Moert_In:$send, Moert_Out:$recv, I64:$count);
  let assemblyFormat = [{
    $ctx `,` $group $send `->` $recv `count` $count attr-dict `:`
    type($send) `->` type($recv)
  }];
}

def Moert_AllGatherOp : Moert_GatherScatterOp<"all_gather",
    "moert_all_gather: recv = the members' send blocks in member order",
    "moert.all_gather %ctx, %g %x -> %all count %n : !moert.view<f32, 1024> -> !moert.view<f32, 2048>">;

def Moert_ReduceScatterOp : Moert_GatherScatterOp<"reduce_scatter",
    "moert_reduce_scatter: recv = sum over members of their send block for me",
    "moert.reduce_scatter %ctx, %g %part -> %mine count %n : !moert.view<f32, 2048> -> !moert.view<f32, 1024>">;

def Moert_TokenShareOp
    : Moert_CallOp<"token_share", "moert_token_share", "exchange"> {
  let summary = "moert_token_share: this member's rows of the group's tokens";
  let description = [{
    Duplicate-token dropping: the members hold the same `tokens` rows of
    `x`; member m copies rows [m*c, min(tokens, (m+1)*c)) with
    c = ceil(tokens / G) to `share` and gets their count.

    ```mlir
    %n = moert.token_share %ctx, %g %x -> %share tokens %t hidden 64
        : !moert.view<f32, 4096> -> !moert.view<f32, 2048>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_GroupType:$group,
                       Moert_In:$x, Moert_Out:$share, I64Prop:$hidden,
                       I64:$tokens);
  let results = (outs I64:$shareTokens);
  // In place: the local receives `tokens` and returns the share's rows.
  let callArguments = (ins $ctx, $group, $x, $share, $hidden,
                           (Moert_Result $tokens));
  let assemblyFormat = [{
    $ctx `,` $group $x `->` $share `tokens` $tokens `hidden` $hidden attr-dict
    `:` type($x) `->` type($share)
  }];
  let hasVerifier = 0;
}

def Moert_AllReduceI64Op
    : Moert_CallOp<"all_reduce_i64", "moert_all_reduce_i64", "exchange",
                   [Pure]> {
  let summary = "moert_all_reduce_i64: one host scalar (dropless capacity)";
  let description = [{
    ```mlir
    %c = moert.all_reduce_i64 %ctx, %g max %cap
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_GroupType:$group,
                       EnumProp<Moert_ReduceOp>:$op, I64:$value);
  let results = (outs I64:$result);
  // In place: the local receives `value` and returns the reduction.
  let callArguments = (ins $ctx, $group, $op, (Moert_Result $value));
  let assemblyFormat = "$ctx `,` $group $op $value attr-dict";
  let hasVerifier = 0;
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

def Moert_RankOp : Moert_Op<"rank", [Pure]> {
  let summary = "moert_context_rank: the calling rank's world index";
  let description = [{
    ```mlir
    %r = moert.rank %ctx
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx);
  let results = (outs I64:$rank);
  let assemblyFormat = "$ctx attr-dict";
  let hasVerifier = 0;
}

def Moert_LoadWeightOp : Moert_CallOp<"load_weight", "moert_weights_load", "",
                                      [AttrSizedOperandSegments]> {
  let summary = "moert_weights_load: a (sliced) tensor from safetensors";
  let description = [{
    Loads `key` of the expected `shape`, the box `[begin, end)` of it
    (`end = 0`: the full extent). A key with `{e}` is a per-expert pattern:
    experts `[expert_begin, expert_end)` are stacked in front. The view
    receives the box dense, converted to its element type.

    A rank's shard is known only at run time: `expert_offset` shifts the
    expert range and `offsets` (one per dimension) shift the box; the static
    box is then the shard's extent, so `end` must be explicit.

    `stride` (`dst_expert_stride`, elements; default: the box, dense) spaces
    the experts in `dst`: two loads with stride `2F*H`, the second at offset
    `F*H`, pack gate and up into one `[E, 2F, H]` buffer.

    ```mlir
    moert.load_weight %ctx, %weights "layers.0.experts.{e}.w1.weight"
        experts [0, 2) + %e0 shape [128, 64] begin [0, 0] end [64, 64]
        + (%f0, %zero) -> %w1 : !moert.view<f32, 8192>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_WeightsType:$weights,
                       StrAttr:$key, DenseI64ArrayAttr:$shape,
                       DenseI64ArrayAttr:$begin, DenseI64ArrayAttr:$end,
                       OptionalAttr<DenseI64ArrayAttr>:$expert_range,
                       Optional<I64>:$expert_offset, Variadic<I64>:$offsets,
                       DefaultValuedProp<I64Prop, "0">:$dst_expert_stride,
                       Moert_Out:$dst);
  let callArguments = (ins $ctx, $weights,
      (Moert_WeightRequest $key, $shape, $begin, $end, $expert_range,
                           $expert_offset, $offsets, $dst_expert_stride),
      $dst);
  let assemblyFormat = [{
    $ctx `,` $weights $key (`experts` custom<ExpertRange>($expert_range)^)?
    (`+` $expert_offset^)? `shape` $shape `begin` $begin `end` $end
    (`+` `(` $offsets^ `)`)? `->` $dst (`stride` $dst_expert_stride^)?
    attr-dict `:` type($dst)
  }];
  let extraCallOpDeclaration = [{
    /// Elements the load writes into `dst`.
    int64_t getLoadedElements();
  }];
}

def Moert_LoadFusedWeightOp
    : Moert_CallOp<"load_fused_weight", "moert_weights_load_fused", "",
                   [AttrSizedOperandSegments]> {
  let summary = "moert_weights_load_fused: a strided view of a fused tensor";
  let description = [{
    As `moert.load_weight`, but `key` names one tensor of `fused_shape`
    holding every expert's projection (GPT-OSS `gate_up_proj`, Granite
    `input_linear`, DBRX `w1`): element `i` of expert `e`'s tensor of `shape`
    is element `fused_offset + e * fused_expert_stride + sum_d i_d *
    fused_strides[d]`. The expert range is always given (`[0, 1)` with
    expert stride 0 for a weight without experts). The box goes from the
    file into `dst` an expert at a time: no copy of the whole tensor.

    ```mlir
    moert.load_fused_weight %ctx, %weights "layers.0.mlp.experts.gate_up_proj"
        experts [0, 4) fused [4, 32, 48] offset 1 expert_stride 1536
        strides [2, 48] shape [24, 32] begin [0, 0] end [0, 0]
        -> %v stride 1536 : !moert.view<f32, 6144>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_WeightsType:$weights,
                       StrAttr:$key, DenseI64ArrayAttr:$fused_shape,
                       I64Attr:$fused_offset, I64Attr:$fused_expert_stride,
                       DenseI64ArrayAttr:$fused_strides,
                       DenseI64ArrayAttr:$shape,
                       DenseI64ArrayAttr:$begin, DenseI64ArrayAttr:$end,
                       DenseI64ArrayAttr:$expert_range,
                       Optional<I64>:$expert_offset, Variadic<I64>:$offsets,
                       DefaultValuedProp<I64Prop, "0">:$dst_expert_stride,
                       Moert_Out:$dst);
  let callArguments = (ins $ctx, $weights,
      (Moert_WeightRequest $key, $shape, $begin, $end, $expert_range,
                           $expert_offset, $offsets, $dst_expert_stride),
      (Moert_FusedView $fused_shape, $fused_offset, $fused_expert_stride,
                       $fused_strides),
      $dst);
  let assemblyFormat = [{
    $ctx `,` $weights $key `experts` custom<ExpertRange>($expert_range)
    (`+` $expert_offset^)? `fused` $fused_shape `offset` $fused_offset
    `expert_stride` $fused_expert_stride `strides` $fused_strides
    `shape` $shape `begin` $begin `end` $end
    (`+` `(` $offsets^ `)`)? `->` $dst (`stride` $dst_expert_stride^)?
    attr-dict `:` type($dst)
  }];
  let extraCallOpDeclaration = [{
    /// Elements the load writes into `dst`.
    int64_t getLoadedElements();
  }];
}

//===----------------------------------------------------------------------===//
// Step statistics (runtime/moert_model.h)
//===----------------------------------------------------------------------===//

def Moert_LayerOp : Moert_Op<"layer", [SingleBlock, NoTerminator]> {
  let summary = "one layer of a step, timed into stats[index]";
  let description = [{
    The body's calls belong to layer `index`: their failures name it, and
    the wall time of the body is recorded in the step's statistics.

    ```mlir
    moert.layer %stats index 0 {
      moert.add %ctx, %x, %y -> %x count %n : ...
    }
    ```
  }];
  let arguments = (ins Moert_StatsType:$stats, I64Prop:$index);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "$stats `index` $index $body attr-dict";
  let hasVerifier = 0;
}

def Moert_RecordDropsOp
    : Moert_CallOp<"record_drops", "moert_model_record_drops", ""> {
  let summary = "stats[layer].dropped = tokens * top_k - sum(counts)";
  let description = [{
    Reads the gate's per-expert kept counts (i32 `[experts]`) back to the
    host and records the choices that capacity dropped in this step.

    ```mlir
    moert.record_drops %ctx, %stats layer 0 counts %c tokens %s top_k 2
        experts 8 : !moert.view<i32, 8>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx,
                       Arg<Moert_StatsType, "the step's statistics",
                           [MemWrite]>:$stats,
                       I64Prop:$layer, Moert_In:$counts, I64:$tokens,
                       I64Prop:$top_k, I64Prop:$experts);
  let assemblyFormat = [{
    $ctx `,` $stats `layer` $layer `counts` $counts `tokens` $tokens `top_k`
    $top_k `experts` $experts attr-dict `:` type($counts)
  }];
}

//===----------------------------------------------------------------------===//
// The PR-MoE GPT: LayerNorm, a bias alone, per-head fused QKV weights
//===----------------------------------------------------------------------===//

def Moert_LayerNormOp
    : Moert_CallOp<"layer_norm", "moert_layer_norm", "norm"> {
  let summary = "moert_layer_norm: (x - mean) / sqrt(var + eps) * w (+ b)";
  let description = [{
    Per token of `x [S, H]`, in fp32, rounded once to `out`'s dtype
    (torch.nn.LayerNorm). `out` may be `x`.

    ```mlir
    moert.layer_norm %ctx, %x, %w bias %b -> %x tokens %s hidden 64
        epsilon 1.0e-05 : !moert.view<f32, 1024>, !moert.view<f32, 64>,
        !moert.view<f32, 64> -> !moert.view<f32, 1024>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x, Moert_In:$weight,
                       Moert_OptIn:$bias, Moert_Out:$out, I64:$tokens,
                       I64Prop:$hidden, F32Attr:$epsilon);
  let assemblyFormat = [{
    $ctx `,` $x `,` $weight (`bias` $bias^)? `->` $out `tokens` $tokens
    `hidden` $hidden `epsilon` $epsilon attr-dict `:` type($x) `,`
    type($weight) (`,` type($bias)^)? `->` type($out)
  }];
}

def Moert_BiasAddOp : Moert_CallOp<"bias_add", "moert_bias_add", "linear"> {
  let summary = "moert_bias_add: out[s] = x[s] + bias";
  let description = [{
    ```mlir
    moert.bias_add %ctx, %x, %b -> %x tokens %s hidden 64
        : !moert.view<f32, 1024>, !moert.view<f32, 64> -> !moert.view<f32, 1024>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x, Moert_In:$bias,
                       Moert_Out:$out, I64:$tokens, I64Prop:$hidden);
  let assemblyFormat = [{
    $ctx `,` $x `,` $bias `->` $out `tokens` $tokens `hidden` $hidden
    attr-dict `:` type($x) `,` type($bias) `->` type($out)
  }];
}

def Moert_ClampOp : Moert_CallOp<"clamp", "moert_clamp", "linear"> {
  let summary = "moert_clamp: out = min(max(x, -limit), limit)";
  let description = [{
    Over `count` elements (DBRX's clip_qkv on a projection's output); `out`
    may be `x`.

    ```mlir
    moert.clamp %ctx, %x -> %x count %n limit 8.0
        : !moert.view<f32, 1024> -> !moert.view<f32, 1024>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x, Moert_Out:$out,
                       I64:$count, F32Attr:$limit);
  let assemblyFormat = [{
    $ctx `,` $x `->` $out `count` $count `limit` $limit attr-dict `:`
    type($x) `->` type($out)
  }];
  let hasVerifier = 1;
}

def Moert_ScaleOp : Moert_CallOp<"scale", "moert_scale", "linear"> {
  let summary = "moert_scale: out = x * factor";
  let description = [{
    Over `count` elements, rounded once to `out`'s dtype (Granite's
    embedding, residual and logits multipliers); `out` may be `x`.

    ```mlir
    moert.scale %ctx, %x -> %x count %n factor 0.5
        : !moert.view<f32, 1024> -> !moert.view<f32, 1024>
    ```
  }];
  let arguments = (ins Moert_ContextType:$ctx, Moert_In:$x, Moert_Out:$out,
                       I64:$count, F32Attr:$factor);
  let assemblyFormat = [{
    $ctx `,` $x `->` $out `count` $count `factor` $factor attr-dict `:`
    type($x) `->` type($out)
  }];
  let hasVerifier = 1;
}

#endif // MOE_DIALECT_MOERT_IR_MOERTOPS_TD
