# The runtime's layers (runtime/CMakeLists.txt) as include rules: common/
# includes nothing above it, the backends cpu/ and cuda/ (with nccl/) are
# peers that never include each other or the API layer.
#   cmake -DRUNTIME=<runtime source dir> -P Layers.cmake
function(forbid dir layers)
  file(GLOB_RECURSE files ${RUNTIME}/${dir}/*.h ${RUNTIME}/${dir}/*.cpp
       ${RUNTIME}/${dir}/*.cu ${RUNTIME}/${dir}/*.cuh ${RUNTIME}/${dir}/*.def)
  foreach(file ${files})
    file(STRINGS ${file} includes REGEX "#include \"runtime/(${layers})/")
    if(includes)
      message(SEND_ERROR "${file}: ${includes}")
    endif()
  endforeach()
endfunction()
forbid(common "api|cpu|cuda|nccl|launch|weights|runner")
forbid(cpu "api|cuda|nccl")
forbid(cuda "api|cpu")
forbid(nccl "api|cpu")
