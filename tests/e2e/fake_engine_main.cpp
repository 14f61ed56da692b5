// shmrepl-fake-engine: shmrepl-engine's program over the FakeEngine (no Python).
#include "engine_main.hpp"
#include "fake_engine.hpp"

int main(int argc, char** argv) {
  return shmrepl::server::engine_main(argc, argv, [](const shmrepl::engine::EngineOptions& o) {
    return std::make_unique<shmrepl::test::FakeEngine>(o);
  });
}
