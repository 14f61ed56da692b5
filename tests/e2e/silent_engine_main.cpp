// shmrepl-test-silent-engine SOCKET [--trickle]: a peer that accepts, answers Hello
// like an engine, and then never replies to anything (reads and drops). What a hung
// engine looks like to a client; tests of the client's request timeout (C and every
// binding) start it. With --trickle it answers every request with Ok, one byte per
// 100 ms: a peer that is never silent for long but never done either.
// Exits when its parent dies or on SIGTERM.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "control.hpp"

namespace control = shmrepl::control;

int main(int argc, char** argv) {
  const bool trickle = argc == 3 && std::strcmp(argv[2], "--trickle") == 0;
  if (argc != 2 && !trickle) {
    std::fprintf(stderr, "usage: %s SOCKET [--trickle]\n", argv[0]);
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  const int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  unlink(argv[1]);
  if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(ls, 16) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  for (;;) {
    const int fd = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread([fd, trickle] {
      std::vector<uint8_t> body;
      const control::ctl::Message* m = nullptr;
      std::string err;
      if (control::read_message(fd, &body, &m, &err) == SHMREPL_OK &&
          m->body_type() == control::ctl::Body::Hello) {
        const control::Frame reply = control::hello_reply(
            m->request_id(), SHMREPL_ABI_VERSION, static_cast<uint32_t>(getpid()), "silent");
        control::write_all(fd, reply.data(), reply.size(), &err);
      }
      if (trickle) {
        while (control::read_message(fd, &body, &m, &err) == SHMREPL_OK) {
          const control::Frame ok = control::ok(m->request_id());
          for (const uint8_t byte : ok) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            if (control::write_all(fd, &byte, 1, &err) != SHMREPL_OK) break;
          }
        }
      }
      char buf[4096];
      while (read(fd, buf, sizeof buf) > 0) {
      }
      close(fd);
    }).detach();
  }
}
