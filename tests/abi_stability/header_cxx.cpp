// The public header as a C++ client sees it: compiled (not run) by the
// abi_header_cxx* tests as C++11 and C++20 with every warning an error.
#include <cstddef>
#include <type_traits>

#include "shmrepl/shmrepl.h"

// The record view is plain data to C++ too (bindings copy it around).
static_assert(std::is_trivially_copyable<shmrepl_record_t>::value, "record view is POD");
static_assert(std::is_standard_layout<shmrepl_record_t>::value, "record view is POD");

int main() {
  shmrepl_record_t record = shmrepl_record_t();
  shmrepl_reader_options_t options = {sizeof(shmrepl_reader_options_t), SHMREPL_START_NEWEST};
  shmrepl_status_t (*next)(shmrepl_reader_t*, int64_t, shmrepl_record_t*) = &shmrepl_reader_next;
  return next != nullptr && record.kind == SHMREPL_RECORD_UNKNOWN &&
                 options.start == SHMREPL_START_NEWEST
             ? 0
             : 1;
}
