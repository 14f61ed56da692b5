// The `shmrepl` command line: its subcommands and what they share.
#pragma once

#include <string>
#include <vector>

#include "shmrepl/shmrepl.h"

namespace shmrepl::cli {

struct Global {
  std::string socket;  // --socket; empty: the library's default
};

int cmd_run(const Global& g, const std::vector<std::string>& args);
int cmd_tail(const Global& g, const std::vector<std::string>& args);
int cmd_dump(const Global& g, const std::vector<std::string>& args);
int cmd_gc(const Global& g, const std::vector<std::string>& args);

// Prints "shmrepl: <what>: <status text> (<last error>)" to stderr.
void report(const std::string& what, shmrepl_status_t status);
// Writes all of [data, data+len) to fd (loops over short writes). False on error.
bool write_all(int fd, const void* data, size_t len);

// Writes the OUTPUT records of a batch to fd 1 / fd 2, gathering runs of the same
// stream into one writev. Returns false if a write failed.
bool write_outputs(const shmrepl_record_t* records, size_t n);
// The exit status python3 would have for a FINISHED record.
int exit_code_of(const shmrepl_record_t& finished);

}  // namespace shmrepl::cli
