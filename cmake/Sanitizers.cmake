# SHMREPL_SANITIZE applies to every target of the build (separate build dirs per kind).
# SHMREPL_BUILD_FUZZ (clang only) instruments everything for libFuzzer's coverage and,
# unless told otherwise, for ASan+UBSan, so the code under test is checked, not just
# the fuzz targets.
if(SHMREPL_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang" OR NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SHMREPL_BUILD_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang")
  endif()
  if(NOT SHMREPL_SANITIZE)
    set(SHMREPL_SANITIZE address,undefined)
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
if(SHMREPL_SANITIZE)
  add_compile_options(-fsanitize=${SHMREPL_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${SHMREPL_SANITIZE})
endif()
