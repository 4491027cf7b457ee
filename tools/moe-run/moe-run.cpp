//===- moe-run.cpp - compile, build and run a MoE model -------------------===//

#include "compiler/Driver/Driver.h"

int main(int argc, char **argv) { return mlir::moe::runDriver(argc, argv); }
