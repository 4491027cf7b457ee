# Sourced by scripts/test.sh and scripts/fuzz.sh: how the sanitized build's
# programs run.
# - allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons the slabs it
#   hands out when compiled with ASan; our code is, Debian's libMLIR is not,
#   and both allocate from one allocator, so the poisoning would report
#   libMLIR's correct reads.
# - detect_leaks=0: LLVM and MLIR keep registries alive to the exit on
#   purpose.
# - Any UBSan report stops the program, so it fails the test or is a fuzzer
#   crash.
export ASAN_OPTIONS=${ASAN_OPTIONS:-allow_user_poisoning=0:detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
