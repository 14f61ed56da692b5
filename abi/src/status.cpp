#include "status.hpp"

namespace shmrepl::abi {

namespace {
thread_local std::string t_last_error;
}

void set_error(std::string text) noexcept {
  try {
    t_last_error = std::move(text);
  } catch (...) {
    t_last_error.clear();
  }
}

void clear_error() noexcept { t_last_error.clear(); }

const char* t_last_error_cstr() noexcept { return t_last_error.c_str(); }

shmrepl_status_t fail(shmrepl_status_t status, std::string text) noexcept {
  set_error(std::move(text));
  return status;
}

shmrepl_status_t from_current_exception() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return fail(SHMREPL_E_NOMEM, "out of memory");
  } catch (const std::system_error& e) {
    return fail(SHMREPL_E_SYSTEM, e.what());
  } catch (const std::exception& e) {
    return fail(SHMREPL_E_INTERNAL, e.what());
  } catch (...) {
    return fail(SHMREPL_E_INTERNAL, "unknown exception");
  }
}

}  // namespace shmrepl::abi

extern "C" {

SHMREPL_API const char* shmrepl_version(void) {
#define SHMREPL_STR2(x) #x
#define SHMREPL_STR(x) SHMREPL_STR2(x)
  return SHMREPL_STR(SHMREPL_VERSION_MAJOR) "." SHMREPL_STR(SHMREPL_VERSION_MINOR) "." SHMREPL_STR(
      SHMREPL_VERSION_PATCH);
}

SHMREPL_API uint32_t shmrepl_abi_version(void) { return SHMREPL_ABI_VERSION; }

SHMREPL_API const char* shmrepl_status_str(shmrepl_status_t status) {
  switch (status) {
    case SHMREPL_OK: return "ok";
    case SHMREPL_E_INVALID: return "invalid argument";
    case SHMREPL_E_NOT_FOUND: return "not found";
    case SHMREPL_E_AGAIN: return "nothing available yet";
    case SHMREPL_E_TIMEOUT: return "timed out";
    case SHMREPL_E_EOF: return "end of stream";
    case SHMREPL_E_CORRUPT: return "corrupt ring or record";
    case SHMREPL_E_VERSION: return "incompatible version";
    case SHMREPL_E_PRODUCER_DIED: return "the ring's producer died";
    case SHMREPL_E_NO_SLOT: return "no free reader slot";
    case SHMREPL_E_NOMEM: return "out of memory";
    case SHMREPL_E_PERMISSION: return "permission denied";
    case SHMREPL_E_SYSTEM: return "system call failed";
    case SHMREPL_E_ENGINE_DIED: return "the engine died";
    case SHMREPL_E_PROTOCOL: return "protocol error";
    case SHMREPL_E_STATE: return "invalid state for this call";
    case SHMREPL_E_CONNECT: return "cannot reach an engine";
    case SHMREPL_E_TOO_LARGE: return "request too large";
    case SHMREPL_E_SESSION_DIED: return "the session's worker process died";
    case SHMREPL_E_LIMIT: return "an engine limit is reached";
    case SHMREPL_E_INTERNAL: return "internal error";
    default: return "unknown status";
  }
}

SHMREPL_API const char* shmrepl_last_error(void) { return shmrepl::abi::t_last_error_cstr(); }

}  // extern "C"
