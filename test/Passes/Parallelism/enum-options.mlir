// Every value of the enum options, spelled as before they were enums.
// RUN: moe-opt %s --moe-assign-parallelism="policy=latency all-to-all=auto report=json" -o /dev/null | FileCheck %s --check-prefix=LATENCY
// RUN: moe-opt %s --moe-assign-parallelism="policy=throughput report=json" -o /dev/null | FileCheck %s --check-prefix=THROUGHPUT
// RUN: moe-opt %s --moe-assign-parallelism="all-to-all=flat report=json" -o /dev/null | FileCheck %s --check-prefix=FLAT
// RUN: moe-opt %s --moe-assign-parallelism="all-to-all=hierarchical report=json" -o /dev/null | FileCheck %s --check-prefix=HIER
// RUN: moe-opt %s --moe-assign-parallelism="report=table" -o /dev/null | FileCheck %s --check-prefix=TABLE
// RUN: moe-opt %s --moe-assign-parallelism="report=none" -o /dev/null | count 0
// RUN: moe-opt %s --moe-assign-parallelism | FileCheck %s --check-prefix=DEFAULT

// 16 experts over 2 nodes of 8: the exchange group spans the nodes.
// LATENCY: "policy": "latency"
// LATENCY: "tokens_per_rank": 8
// THROUGHPUT: "policy": "throughput"
// THROUGHPUT: "tokens_per_rank": 4096
// FLAT: "all_to_all":"flat"
// HIER: "all_to_all":"hierarchical"
// TABLE: moe plan: mesh 2x8, throughput policy, 4096 tokens per rank per step
// TABLE: 0 moe           16     1   16    1    1
// Defaults: throughput, and the table travels with the module only.
// DEFAULT: moe.plan_table = "moe plan: mesh 2x8, throughput policy
module attributes {moe.mesh = #moe.mesh<nodes = 2, gpus_per_node = 8>} {
  func.func @moe(%x: tensor<?x64xbf16>,
      %wg: tensor<16x64xbf16> {moe.weight = "gate"},
      %w1: tensor<16x128x64xbf16> {moe.weight = "experts.{e}.w1"},
      %w3: tensor<16x128x64xbf16> {moe.weight = "experts.{e}.w3"},
      %w2: tensor<16x64x128xbf16> {moe.weight = "experts.{e}.w2"}) -> tensor<?x64xbf16> {
    %y = moe.layer 0 (%h = %x) : tensor<?x64xbf16> {
      %l = moe.router %h, %wg : tensor<?x64xbf16>, tensor<16x64xbf16>
      %ids, %w, %s, %c, %cap = moe.gate %l <scoring = softmax, top_k = 2, normalize = selected> : tensor<?x16xf32>
      %b = moe.dispatch %h, %ids, %s, %cap : tensor<?x64xbf16>, tensor<?x2xi32> -> tensor<16x?x64xbf16>
      %e = moe.experts silu %b gate %w1 up %w3 down %w2 : (tensor<16x?x64xbf16>, tensor<16x128x64xbf16>, tensor<16x128x64xbf16>, tensor<16x64x128xbf16>) -> tensor<16x?x64xbf16>
      %o = moe.combine %e, %ids, %s, %w : tensor<16x?x64xbf16>, tensor<?x2xi32>
      moe.yield %o : tensor<?x64xbf16>
    }
    return %y : tensor<?x64xbf16>
  }
}
