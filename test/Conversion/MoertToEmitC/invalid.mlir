// RUN: moe-opt %s --convert-moert-to-emitc -verify-diagnostics

// expected-error @below {{convert-moert-to-emitc: 'f' is not a model entry (run convert-moe-to-moert first)}}
func.func @f(%ctx: !moert.context) {
  return
}
