// RUN: moe-translate --import-hf-model %S/../../Translate/Inputs/published/mixtral-8x7b-v0.1.json \
// RUN:   | moe-opt --moe-assign-parallelism="mesh=1x8 attention-tp=0 policy=latency report=table" -o /dev/null \
// RUN:   | FileCheck %s --check-prefix=DECODE
// RUN: moe-translate --import-hf-model %S/../../Translate/Inputs/published/mixtral-8x7b-v0.1.json \
// RUN:   | moe-opt --moe-assign-parallelism="mesh=1x8 attention-tp=0 policy=throughput report=table" -o /dev/null \
// RUN:   | FileCheck %s --check-prefix=PREFILL
// RUN: moe-translate --import-hf-model %S/../../Translate/Inputs/published/mixtral-8x7b-v0.1.json \
// RUN:   | moe-opt --moe-assign-parallelism="mesh=1x8 attention-tp=0 policy=latency" \
// RUN:   | FileCheck %s --check-prefix=ATTR
// RUN: moe-translate --import-hf-model %S/../../Translate/Inputs/published/mixtral-8x7b-v0.1.json \
// RUN:   | moe-opt --moe-assign-parallelism="mesh=1x8 attention-tp=0 policy=throughput memory-gib=12 report=table" -o /dev/null \
// RUN:   | FileCheck %s --check-prefix=FIT
// RUN: moe-translate --import-hf-model %S/../../Translate/Inputs/published/olmoe-1b-7b-0924.json \
// RUN:   | moe-opt --moe-assign-parallelism="mesh=1x8 attention-tp=0 policy=latency report=table" -o /dev/null \
// RUN:   | FileCheck %s --check-prefix=OLMOE
// RUN: not moe-opt %s --moe-assign-parallelism="attention-tp=-1" 2>&1 | FileCheck %s --check-prefix=NEGATIVE

// attention-tp=0: the cost model splits the heads over the ranks (one split
// for every attention layer) where that is fastest. Mixtral-8x7B on 8 GPUs:
// decode steps (8 tokens per rank) are bound by reading the attention
// weights, so a pair of ranks splitting them wins; prefill steps (4096 tokens
// per rank) are compute bound, and a tp group serves tp times fewer distinct
// tokens, so data parallel wins.
// DECODE: 0 attn 0 0 1 2 4 -
// PREFILL: 0 attn 0 0 1 1 8 -
// With 12 GiB a device cannot hold every layer's attention weights whole:
// the fastest split that fits.
// FIT: 0 attn 0 0 1 2 4 -
// ATTR: module attributes {{{.*}}moe.attention_tp = 2 : i64
// OLMoE's q/k norm over the whole projection needs every head on a rank.
// OLMOE: 0 attn 0 0 1 1 8 -
// NEGATIVE: attention-tp must be 0 (the cost model's choice) or positive, got -1
module {
}
