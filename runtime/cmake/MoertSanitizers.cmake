# Sanitized and fuzzing builds, one home for their flags and for the list of
# fuzzers; used by the runtime built alone and by the whole project, each in
# a build directory of its own (scripts/test.sh --sanitize, scripts/fuzz.sh).
#
# moert_add_sanitizers(FUZZ): ASan + UBSan, and with FUZZ libFuzzer's
# coverage, for every C/C++ target of the calling directory and below.
function(moert_add_sanitizers fuzz)
  set(flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
      -fno-omit-frame-pointer)
  if(fuzz)
    if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
      message(FATAL_ERROR "fuzzers need clang (libFuzzer): configure with "
        "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
    endif()
    list(APPEND flags -fsanitize=fuzzer-no-link)
  endif()
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:${flags}>")
  add_link_options(-fsanitize=address,undefined)
endfunction()

# moert_add_fuzzer(NAME SOURCES src... LIBS lib... SEEDS glob... [DICT file]):
# an executable NAME in bin/ with libFuzzer's main, recorded with its seed
# globs (relative to the source root) and dictionary in
# ${CMAKE_BINARY_DIR}/fuzz-targets.txt, the list scripts/fuzz.sh builds
# (target `fuzzers`) and runs.
set(MOERT_FUZZ_TARGETS ${CMAKE_BINARY_DIR}/fuzz-targets.txt)
get_property(moert_fuzz_list_started GLOBAL PROPERTY MOERT_FUZZ_LIST_STARTED)
if(NOT moert_fuzz_list_started)
  set_property(GLOBAL PROPERTY MOERT_FUZZ_LIST_STARTED TRUE)
  file(WRITE ${MOERT_FUZZ_TARGETS} "")
  add_custom_target(fuzzers)
endif()

function(moert_add_fuzzer name)
  cmake_parse_arguments(ARG "" "DICT" "SOURCES;LIBS;SEEDS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  set_target_properties(${name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
  add_dependencies(fuzzers ${name})
  list(JOIN ARG_SEEDS " " seeds)
  if(NOT ARG_DICT)
    set(ARG_DICT -) # tabs are blanks to the reader: a column cannot be empty
  endif()
  file(APPEND ${MOERT_FUZZ_TARGETS}
    "${name}\t${CMAKE_BINARY_DIR}/bin/${name}\t${ARG_DICT}\t${seeds}\n")
endfunction()
