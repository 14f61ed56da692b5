// shmrepl-engine: the supervisor, its zygote, and one worker process per session,
// each running the engine core (embedded CPython) for its session.
#include "engine_main.hpp"
#include "shmrepl/engine/engine.hpp"

int main(int argc, char** argv) {
  // Fresh workers are this program again, by a path that outlives its file's replacement.
  const shmrepl::server::ZygoteHooks hooks{shmrepl::engine::preinitialize, shmrepl::engine::fork_interpreter,
                                           "/proc/self/exe", shmrepl::engine::prepare_worker};
  return shmrepl::server::engine_main(
      argc, argv, [](const shmrepl::engine::EngineOptions& o) { return shmrepl::engine::Engine::start(o); },
      &hooks);
}
