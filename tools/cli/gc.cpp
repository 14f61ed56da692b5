// `shmrepl gc`: removes the rings that engines which are gone left in /dev/shm.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <string>

#include "cli.hpp"
#include "shmrepl/shm/layout.hpp"

namespace shmrepl::cli {

namespace {

const char* const kGcUsage =
    "usage: shmrepl gc [--dry-run] [--dir DIR]\n"
    "\n"
    "Removes the rings of this user whose engine is gone: /dev/shm/shmrepl.<uid>.<pid>.*\n"
    "where <uid> is ours and process <pid> does not exist or is a zombie. Prints one\n"
    "line per ring removed and a summary; rings of live processes are kept. An engine\n"
    "does the same when it starts.\n"
    "\n"
    "options:\n"
    "  --dry-run  print what would be removed, remove nothing\n"
    "  --dir DIR  look in DIR instead of /dev/shm\n"
    "  -h, --help print this help\n";

enum class Pid { kAlive, kDead, kZombie };

Pid pid_state(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return Pid::kDead;
  // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces and parentheses.
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::size_t close = stat.rfind(')');
  if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z')
    return Pid::kZombie;
  // EPERM (another user's process) or no /proc entry readable: alive, keep its rings.
  return Pid::kAlive;
}

// The ring's guardian (the engine that closes a dead worker's ring) still runs: the
// ring is not stale yet. Reads the header of layout.hpp (a file that is no ring has none).
bool guardian_alive(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  unsigned char page[sizeof(shmrepl::shm::RingHeader)];
  const bool got = ::pread(fd, page, sizeof page, 0) == static_cast<ssize_t>(sizeof page);
  ::close(fd);
  uint64_t magic = 0;
  uint32_t pid = 0;
  std::memcpy(&magic, page + offsetof(shmrepl::shm::RingHeader, magic), sizeof magic);
  std::memcpy(&pid, page + offsetof(shmrepl::shm::RingHeader, guardian_pid), sizeof pid);
  return got && magic == shmrepl::shm::kMagic && pid != 0 && pid_state(static_cast<pid_t>(pid)) == Pid::kAlive;
}

// The pid of "shmrepl.<uid>.<pid>.<rest>", or 0 if `name` is not one of our rings.
pid_t ring_pid(const std::string& name, const std::string& prefix) {
  if (name.compare(0, prefix.size(), prefix) != 0) return 0;
  std::size_t i = prefix.size(), j = i;
  while (j < name.size() && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j - i > 9 || j + 1 >= name.size() || name[j] != '.') return 0;
  return static_cast<pid_t>(std::stol(name.substr(i, j - i)));
}

}  // namespace

int cmd_gc(const Global&, const std::vector<std::string>& args) {
  bool dry_run = false;
  std::string dir = "/dev/shm";
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kGcUsage, stdout);
      return 0;
    } else if (a == "--dry-run" || a == "-n") {
      dry_run = true;
    } else if (a == "--dir" && i + 1 < args.size()) {
      dir = args[++i];
    } else if (a.rfind("--dir=", 0) == 0) {
      dir = a.substr(6);
    } else if (a == "--dir") {
      std::fprintf(stderr, "shmrepl gc: --dir needs a folder (see shmrepl gc --help)\n");
      return 2;
    } else {
      std::fprintf(stderr, "shmrepl gc: unexpected argument %s (see shmrepl gc --help)\n", a.c_str());
      return 2;
    }
  }
  const uid_t uid = geteuid();
  const std::string prefix = "shmrepl." + std::to_string(uid) + ".";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    std::fprintf(stderr, "shmrepl gc: cannot read %s: %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) names.emplace_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());

  int removed = 0, kept = 0, failed = 0;
  const bool shm = dir == "/dev/shm";
  for (const std::string& name : names) {
    const pid_t pid = ring_pid(name, prefix);
    if (pid <= 0) continue;
    const std::string path = dir + "/" + name;
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0 || st.st_uid != uid || !S_ISREG(st.st_mode)) continue;
    const Pid state = pid_state(pid);
    if (state == Pid::kAlive || guardian_alive(path)) {
      ++kept;
      continue;
    }
    const char* why = state == Pid::kZombie ? "is a zombie" : "is gone";
    if (dry_run) {
      std::printf("would remove %s (process %d %s)\n", path.c_str(), static_cast<int>(pid), why);
      ++removed;
      continue;
    }
    const int rc = shm ? shm_unlink(("/" + name).c_str()) : unlink(path.c_str());
    if (rc == 0 || errno == ENOENT) {  // ENOENT: an engine removed it meanwhile
      std::printf("removed %s (process %d %s)\n", path.c_str(), static_cast<int>(pid), why);
      ++removed;
    } else {
      std::fprintf(stderr, "shmrepl gc: cannot remove %s: %s\n", path.c_str(), std::strerror(errno));
      ++failed;
    }
  }
  std::printf("%s %d ring%s of dead processes; kept %d of live ones\n",
              dry_run ? "would remove" : "removed", removed, removed == 1 ? "" : "s", kept);
  return failed == 0 ? 0 : 1;
}

}  // namespace shmrepl::cli
