// Test support: read an execution's ring through the public C ABI, and run
// /usr/bin/python3 for reference output.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "shmrepl/engine/engine.hpp"
#include "shmrepl/shmrepl.h"

namespace shmrepl::test {

struct Rec {
  uint32_t kind = 0;
  uint32_t stream = 0;
  uint32_t flags = 0;
  uint32_t finish_status = 0;
  uint64_t execution_id = 0;
  uint64_t seq = 0;
  uint64_t timestamp_ns = 0;
  int64_t exit_code = 0;
  std::string data;
  std::string ename, evalue;
  std::vector<std::string> traceback;
};

struct Collected {
  std::vector<Rec> records;  // every record except Output (unless keep_outputs)
  std::string out, err;      // the stdout / stderr bytes in ring order
  std::string merged;        // both streams in ring order
  uint64_t output_records = 0;
  uint64_t total_records = 0;
  uint64_t finished_count = 0;
  shmrepl_status_t end_status = SHMREPL_OK;  // SHMREPL_E_EOF when the ring was read to its end
  // Checked on the fly: seq gap-free from 0, execution_id on every record.
  bool seq_ok = true;
  bool exec_id_ok = true;
  bool split_ok = true;  // MORE/CONTINUED parts consecutive and well formed
  const Rec* finished() const;
  const Rec* find(uint32_t kind) const;
};

struct ReadOptions {
  bool keep_outputs = false;  // also keep Output records in `records`
  bool keep_streams = true;   // accumulate out/err/merged
  // Called for every Output record's data (e.g. to check content without keeping it).
  std::function<void(const shmrepl_record_t&)> on_output;
  int64_t timeout_ns = 60'000'000'000;  // per wait
  // Checks: execution id expected on records (0: the ring header's).
  uint64_t expect_execution_id = 0;
  bool any_execution_id = false;  // background rings: ids vary
};

// Reads `ring` to its end (EOF) or until a wait times out.
Collected read_ring(const std::string& ring, const ReadOptions& options = {});

// Executes `code` in `session` and reads its ring to the end.
struct RunOptions {
  std::string filename = "<shmrepl>";
  bool script = false;
  uint64_t ring_capacity = 0;
  std::vector<std::string> argv;
  ReadOptions read;
};
Collected run(engine::Engine& engine, uint64_t session, const std::string& code,
              const RunOptions& options = {});

// /usr/bin/python3 output for comparison.
struct PyResult {
  std::string out, err;  // merged: everything in `out`
  int exit_code = -1;
};
// env: extra "NAME=value" entries; PYTHONUNBUFFERED is removed unless given here.
PyResult run_python(const std::vector<std::string>& args, bool merge_stderr,
                    const std::vector<std::string>& env = {});

std::string workload(const std::string& name);  // absolute path of tests/workloads/<name>
// SHMREPL_TEST_SCALE (default 1) shrinks the long tests, e.g. 0.1 under sanitizers.
double test_scale();
long scaled(long n);  // max(1, n * scale)
// The workload with every integer literal >= 1000 scaled (a copy in the test's temp
// dir, same file name); the workload itself when the scale is 1.
std::string scaled_workload(const std::string& name);
std::string read_file(const std::string& path);

// Number of /dev/shm objects named shmrepl.<uid>.<pid>.*
int count_rings();
// Peak resident set (VmHWM) and current (VmRSS) in KiB.
long vm_hwm_kib();
long vm_rss_kib();

}  // namespace shmrepl::test
