# Project-wide warnings; SHMREPL_WERROR (off by default; on in tools/test.sh and CI) makes them errors.
add_library(shmrepl_warnings INTERFACE)
target_compile_options(shmrepl_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  -Wnon-virtual-dtor -Wcast-align -Wdouble-promotion
  $<$<BOOL:${SHMREPL_WERROR}>:-Werror>
  # GCC 12 at -O3 (Release) reports -Wrestrict on `"literal" + std::string` (GCC bug
  # 105651, a false positive): a warning there, not an error.
  $<$<AND:$<BOOL:${SHMREPL_WERROR}>,$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-error=restrict>)
