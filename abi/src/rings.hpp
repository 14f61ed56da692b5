// Rings this process was handed (sealed memfds from Accepted and SessionOpened),
// by name, so that shmrepl_reader_open(name) maps the descriptor it already has.
#pragma once

#include <string>

namespace shmrepl::abi {

// Keeps `fd` (owned from now on) as the ring `name`.
void register_ring(const std::string& name, int fd) noexcept;
// Closes the descriptor kept for `name` (readers already open keep their mapping).
void forget_ring(const std::string& name) noexcept;

}  // namespace shmrepl::abi
