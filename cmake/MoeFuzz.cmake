# libFuzzer targets (-DMOE_FUZZ=ON, clang, in a build directory of their
# own: every target built there is instrumented). LLVM and MLIR come
# prebuilt (Debian's libMLIR.so, g++): only our code gets the coverage and
# AddressSanitizer instrumentation, and the fuzzers link libFuzzer.
#
# The one list of fuzzers is the moe_add_fuzzer calls: each records its
# binary and seed corpus in ${MOE_FUZZ_TARGETS}, which scripts/fuzz.sh
# builds (target moe-fuzzers) and runs.

if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "MOE_FUZZ needs clang for libFuzzer: configure with "
                      "-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer)
add_link_options(-fsanitize=address)

set(MOE_FUZZ_TARGETS ${CMAKE_BINARY_DIR}/fuzz-targets.txt)
file(WRITE ${MOE_FUZZ_TARGETS} "")
add_custom_target(moe-fuzzers)

# moe_add_fuzzer(NAME SOURCES src... SEEDS glob...): an executable NAME in
# bin/ with libFuzzer's main. SEEDS are globs relative to the source root;
# scripts/fuzz.sh copies what they match into the corpus, split into
# inputs (.mlir at `// -----`, .test at split-file `#--- *.json`).
function(moe_add_fuzzer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;SEEDS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  add_dependencies(moe-fuzzers ${name})
  list(JOIN ARG_SEEDS " " seeds)
  file(APPEND ${MOE_FUZZ_TARGETS}
    "${name}\t${CMAKE_BINARY_DIR}/bin/${name}\t${seeds}\n")
endfunction()
