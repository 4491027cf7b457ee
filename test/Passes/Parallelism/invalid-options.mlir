// RUN: not moe-opt %s --moe-assign-parallelism="mesh=2by8" 2>&1 | FileCheck %s --check-prefix=MESH
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=0x8" 2>&1 | FileCheck %s --check-prefix=MESH0
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=1x8 policy=fastest" 2>&1 | FileCheck %s --check-prefix=POLICY
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=1x8 all-to-all=ring" 2>&1 | FileCheck %s --check-prefix=A2A
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=1x8 report=xml" 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: not moe-opt %s --moe-assign-parallelism="mesh=1x8 inter-node-gbps=-5" 2>&1 | FileCheck %s --check-prefix=BANDWIDTH

// A malformed mesh or hardware number is diagnosed at the module.
// MESH: error: mesh option '2by8' is not NODESxGPUS, e.g. 2x8
// MESH0: error: mesh option '0x8' is not NODESxGPUS, e.g. 2x8
// BANDWIDTH: error: inter_node_gbps must be finite and positive, got -5

// An enum option's parser refuses other values and names the accepted ones.
// POLICY: for the --policy option: 'fastest' is not one of latency, throughput
// A2A: for the --all-to-all option: 'ring' is not one of auto, flat, hierarchical
// REPORT: for the --report option: 'xml' is not one of none, table, json, svg
module {
}
