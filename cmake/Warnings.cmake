# Project-wide warnings; SHMREPL_WERROR (off by default; on in tools/test.sh and CI) makes them errors.
add_library(shmrepl_warnings INTERFACE)
target_compile_options(shmrepl_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  -Wnon-virtual-dtor -Wcast-align -Wdouble-promotion
  $<$<BOOL:${SHMREPL_WERROR}>:-Werror>)
