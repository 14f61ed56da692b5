// Command line of shmrepl-engine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shmrepl::server {

struct Options {
  std::string socket;           // empty: $SHMREPL_SOCKET, else the default
  uint64_t ring_capacity = 0;   // 0: the engine core's default
  bool help = false;
  bool version = false;
};

extern const char* const kUsage;

// Parses argv[1..]. Returns false with *error set on bad input.
bool parse_options(const std::vector<std::string>& args, Options* out, std::string* error);

}  // namespace shmrepl::server
