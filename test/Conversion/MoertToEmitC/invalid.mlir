// RUN: moe-opt %s --moert-to-emitc -verify-diagnostics

// expected-error @below {{moert-to-emitc: 'f' is not a model entry (run moe-lower-to-runtime first)}}
func.func @f(%ctx: !moert.context) {
  return
}
