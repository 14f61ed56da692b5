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

// Runs `body` (returning shmrepl_status_t); no exception leaves it.
template <typename F>
shmrepl_status_t guarded(F&& body) noexcept {
  try {
    return body();
  } catch (...) {
    return from_current_exception();
  }
}

}  // namespace shmrepl::abi
