// The shmrepl-engine program (options, socket lock, server, signals, shutdown) with
// the engine core passed in, so tests can run it over a fake engine.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <sys/types.h>

#include "shmrepl/engine/engine.hpp"
#include "workers.hpp"

namespace shmrepl::server {

// main() of shmrepl-engine. Returns the process exit status. With `hooks`, every
// session gets a worker process (forked from a zygote that `hooks` prepare, running
// an engine from `factory`); without, sessions run in this process's engine.
int engine_main(int argc, char** argv, const EngineFactory& factory, const ZygoteHooks* hooks = nullptr);

// Unlinks <dir>/shmrepl.<uid>.<pid>.* of every pid that is not alive (rings
// of killed engines of this user). `dir` is for tests. Returns how many.
int remove_stale_rings(uid_t uid, const std::string& dir = "/dev/shm");

// Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT that write one
// pre-formatted line to the log and then die by the same signal.
void install_fatal_signal_handlers() noexcept;

}  // namespace shmrepl::server
