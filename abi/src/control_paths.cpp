// Where the engine's socket lives, and who may talk to it.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "control.hpp"

namespace shmrepl::control {

std::string socket_path(const char* explicit_path, bool* is_default) {
  *is_default = false;
  if (explicit_path != nullptr && explicit_path[0] != '\0') return explicit_path;
  const char* env = std::getenv("SHMREPL_SOCKET");
  if (env != nullptr && env[0] != '\0') return env;
  *is_default = true;
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') return std::string(runtime) + "/shmrepl/default.sock";
  return "/tmp/shmrepl-" + std::to_string(geteuid()) + "/default.sock";
}

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

shmrepl_status_t ensure_private_dir(const std::string& dir, std::string* error_text) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error_text = "cannot create " + dir + ": " + std::strerror(errno);
    return errno == EACCES ? SHMREPL_E_PERMISSION : SHMREPL_E_SYSTEM;
  }
  // lstat: a symlink planted by someone else is refused, not followed.
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) {
    *error_text = "cannot stat " + dir + ": " + std::strerror(errno);
    return SHMREPL_E_SYSTEM;
  }
  if (!S_ISDIR(st.st_mode)) {
    *error_text = dir + " is not a folder";
    return SHMREPL_E_PERMISSION;
  }
  if (st.st_uid != geteuid()) {
    *error_text = dir + " belongs to uid " + std::to_string(st.st_uid) + ", not to us";
    return SHMREPL_E_PERMISSION;
  }
  if ((st.st_mode & 077) != 0) {
    *error_text = dir + " is accessible to group or others (mode " +
                  std::to_string(st.st_mode & 0777) + " decimal); expected 0700";
    return SHMREPL_E_PERMISSION;
  }
  return SHMREPL_OK;
}

bool peer_allowed(uid_t peer_uid, uid_t engine_uid) noexcept { return peer_uid == engine_uid; }

}  // namespace shmrepl::control
