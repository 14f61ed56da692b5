// Command line of shmrepl-engine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "limits.hpp"

namespace shmrepl::server {

struct Options {
  std::string socket;           // empty: $SHMREPL_SOCKET, else the default
  uint64_t ring_capacity = 0;   // 0: the engine core's default
  Limits limits;                // $SHMREPL_MAX_* / $SHMREPL_HELLO_TIMEOUT, then the flags
  bool help = false;
  bool version = false;
};

extern const char* const kUsage;

// Parses argv[1..]. Returns false with *error set on bad input.
bool parse_options(const std::vector<std::string>& args, Options* out, std::string* error);
// Reads the limits' environment variables (SHMREPL_MAX_CONNECTIONS,
// SHMREPL_MAX_CLIENT_CONNECTIONS, SHMREPL_MAX_SESSIONS, SHMREPL_MAX_CLIENT_SESSIONS,
// SHMREPL_HELLO_TIMEOUT) into out->limits; call before parse_options (flags win).
bool parse_limits_env(Options* out, std::string* error);

}  // namespace shmrepl::server
