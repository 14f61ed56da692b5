// Small wrappers over the system calls the ring needs: shared futexes, clocks and
// process identity (pid + start time, so a recycled pid is not mistaken for a peer).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace shmrepl::shm {

// FUTEX_WAIT on a word in shared memory (not FUTEX_PRIVATE: other processes wake
// it). Returns when woken, when *word != expected, on a signal, or after timeout_ns
// (< 0: no timeout).
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) noexcept;
void futex_wake(std::atomic<uint32_t>* word, int count) noexcept;

// Asymmetric fences across processes (membarrier(2)): a producer publishes records
// with plain release stores, and a reader about to sleep pays for the StoreLoad order
// instead, by making every running thread of the registered processes execute a full
// fence. register_fenced_publisher: by the process `self` (getpid()) before its first
// plain publish, a system call only the first time in a process; fence_publishers:
// what the sleeper calls. Both false when the kernel refuses (before 4.16, seccomp).
bool register_fenced_publisher(pid_t self) noexcept;
bool fence_publishers() noexcept;

uint64_t realtime_ns() noexcept;
uint64_t monotonic_ns() noexcept;

// Field 22 of /proc/<pid>/stat (clock ticks since boot), 0 if there is no such process.
uint64_t process_start_time(pid_t pid) noexcept;
// This process's start time, read from /proc once per process (a fork reads again).
uint64_t own_start_time() noexcept;
// True while the process `pid` that started at `start_time` still runs.
bool process_alive(pid_t pid, uint64_t start_time) noexcept;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace shmrepl::shm
