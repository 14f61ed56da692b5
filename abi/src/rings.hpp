// Rings this process was handed (sealed memfds from Accepted and SessionOpened),
// by name, so that shmrepl_reader_open(name) maps the descriptor it already has.
#pragma once

#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>

#include "shmrepl/shm/reader.hpp"

namespace shmrepl::abi {

struct RingEntry {
  explicit RingEntry(int descriptor) noexcept : fd(descriptor) {}
  ~RingEntry() {
    if (fd >= 0) ::close(fd);
  }
  RingEntry(const RingEntry&) = delete;
  RingEntry& operator=(const RingEntry&) = delete;
  int fd;
  // Mapped once, by the first reader: a session's ring is reset for its next
  // execution, and its readers then attach without a system call (the mapping
  // goes with the entry and the last reader).
  std::mutex mu;
  std::shared_ptr<shm::RingMap> map;  // [mu]
};

// Keeps `entry` as the ring `name` (an entry of that name before is dropped).
void register_ring(const std::string& name, std::shared_ptr<RingEntry> entry) noexcept;
// Drops the entry of `name` (readers already open keep their mapping).
void forget_ring(const std::string& name) noexcept;

}  // namespace shmrepl::abi
