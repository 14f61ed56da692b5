// Status and thread-local error text shared by every exported function.
#pragma once

#include <new>
#include <string>
#include <system_error>

#include "shmrepl/shmrepl.h"

namespace shmrepl::abi {

void set_error(std::string text) noexcept;
void clear_error() noexcept;
const char* t_last_error_cstr() noexcept;
// Records `text` as the last error and returns `status`.
shmrepl_status_t fail(shmrepl_status_t status, std::string text) noexcept;
// Maps the exception being handled to a status (call only inside catch).
shmrepl_status_t from_current_exception() noexcept;

// Statuses that are outcomes, not failures: they leave shmrepl_last_error() "".
inline bool is_outcome(shmrepl_status_t status) noexcept {
  return status == SHMREPL_OK || status == SHMREPL_E_EOF || status == SHMREPL_E_AGAIN ||
         status == SHMREPL_E_TIMEOUT;
}

// Runs `body` (returning shmrepl_status_t); no exception leaves it. The last error
// is what this call failed with, "" after an outcome (text that an inner step left
// on the way to one, e.g. a record next_batch stops before, is not kept).
template <typename F>
shmrepl_status_t guarded(F&& body) noexcept {
  clear_error();
  shmrepl_status_t status;
  try {
    status = body();
  } catch (...) {
    return from_current_exception();
  }
  if (is_outcome(status)) clear_error();
  return status;
}

}  // namespace shmrepl::abi
