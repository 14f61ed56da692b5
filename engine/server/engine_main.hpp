// The shmrepl-engine program (options, socket lock, server, signals, shutdown) with
// the engine core passed in, so tests can run it over a fake engine.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <sys/types.h>

#include "shmrepl/engine/engine.hpp"

namespace shmrepl::server {

using EngineFactory =
    std::function<std::unique_ptr<engine::Engine>(const engine::EngineOptions& options)>;

// main() of shmrepl-engine. Returns the process exit status.
int engine_main(int argc, char** argv, const EngineFactory& factory);

// Unlinks <dir>/shmrepl.<uid>.<pid>.* of every pid that is not alive (rings
// of killed engines of this user). `dir` is for tests. Returns how many.
int remove_stale_rings(uid_t uid, const std::string& dir = "/dev/shm");

// Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT that write one
// pre-formatted line to the log and then die by the same signal.
void install_fatal_signal_handlers() noexcept;

}  // namespace shmrepl::server
