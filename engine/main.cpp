// shmrepl-engine: the engine core behind a Unix domain socket.
#include "engine_main.hpp"
#include "shmrepl/engine/engine.hpp"

int main(int argc, char** argv) {
  return shmrepl::server::engine_main(argc, argv, [](const shmrepl::engine::EngineOptions& o) {
    return shmrepl::engine::Engine::start(o);
  });
}
