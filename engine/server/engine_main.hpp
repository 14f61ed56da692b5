// The shmrepl-engine program (options, socket lock, server, signals, shutdown) with
// the engine core passed in, so tests can run it over a fake engine.
#pragma once

#include <functional>
#include <memory>

#include "shmrepl/engine/engine.hpp"

namespace shmrepl::server {

using EngineFactory =
    std::function<std::unique_ptr<engine::Engine>(const engine::EngineOptions& options)>;

// main() of shmrepl-engine. Returns the process exit status.
int engine_main(int argc, char** argv, const EngineFactory& factory);

}  // namespace shmrepl::server
