// Writes the seed corpora: fuzz/corpus/fuzz_record/ (one encoded record of each kind),
// fuzz/corpus/fuzz_ring_image/ (structured inputs in fuzz_ring_image.cpp's format, and
// raw images snapshotted from a real Producer) and fuzz/corpus/fuzz_control/ (framed
// control messages of each kind, alone and as a stream).
// Usage: fuzz_make_seeds <corpus-dir>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "records.hpp"
#if SHMREPL_HAVE_CONTROL
#include "control.hpp"
#endif
#include "shmrepl/shm/layout.hpp"
#include "shmrepl/shm/producer.hpp"
#include "shmrepl/shm/reader.hpp"

namespace {

namespace fs = std::filesystem;
namespace records = shmrepl::records;
namespace shm = shmrepl::shm;

void write_file(const fs::path& path, const void* p, std::size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  if (!out) {
    std::fprintf(stderr, "make_seeds: cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::printf("%s (%zu bytes)\n", path.c_str(), n);
}

void write_file(const fs::path& path, const std::vector<std::byte>& v) {
  write_file(path, v.data(), v.size());
}

std::vector<std::byte> output(uint64_t seq, shmrepl_stream_t stream, std::string_view text) {
  std::vector<std::byte> v(records::output_size(text.size()));
  records::encode_output(v, {7, seq, 1000 + seq}, stream, std::as_bytes(std::span(text)));
  return v;
}

void record_seeds(const fs::path& dir) {
  std::vector<std::byte> v;
  const records::Meta m{7, 3, 1'700'000'000'000'000'000ull};
  write_file(dir / "output_stdout", output(1, SHMREPL_STREAM_STDOUT, "hello\n"));
  write_file(dir / "output_stderr", output(2, SHMREPL_STREAM_STDERR, "warn: x\n"));
  write_file(dir / "output_empty", output(3, SHMREPL_STREAM_STDOUT, ""));
  write_file(dir / "output_utf8", output(4, SHMREPL_STREAM_STDOUT, "h\xc3\xa9llo \xe2\x82\xac\n"));
  records::encode_started(v, m, 5, "client-id-1");
  write_file(dir / "started", v);
  records::encode_started(v, m, 0, "");
  write_file(dir / "started_no_id", v);
  records::encode_result(v, m, "[1, 2, 3]");
  write_file(dir / "result", v);
  std::string_view tb[] = {"Traceback (most recent call last):\n",
                           "  File \"<cell>\", line 1, in <module>\n",
                           "ZeroDivisionError: division by zero\n"};
  records::encode_error(v, m, "ZeroDivisionError", "division by zero", tb);
  write_file(dir / "error", v);
  records::encode_error(v, m, "", "", {});
  write_file(dir / "error_empty", v);
  records::encode_input_request(v, m, "name? ", false);
  write_file(dir / "input_request", v);
  records::encode_input_request(v, m, "password: ", true);
  write_file(dir / "input_password", v);
  records::encode_finished(v, m, SHMREPL_FINISH_OK, 0, 12345);
  write_file(dir / "finished_ok", v);
  records::encode_finished(v, m, SHMREPL_FINISH_EXITED, 3, 99);
  write_file(dir / "finished_exited", v);
  records::encode_finished(v, m, SHMREPL_FINISH_CANCELLED, 0, 1);
  write_file(dir / "finished_cancelled", v);
}

// Builds structured fuzz_ring_image inputs (the order build_image reads them).
class Input {
 public:
  template <typename T>
  Input& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof v);
    return *this;
  }
  Input& u8(unsigned v) { return put<uint8_t>(static_cast<uint8_t>(v)); }
  Input& text(std::string_view s) {
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  // Header part: capacity selector, override bits, state, taken slots, base position,
  // release mode and batch.
  static Input header(unsigned cap_sel, unsigned over, unsigned state, unsigned slots,
                      uint64_t base, unsigned release_mode, unsigned batch) {
    Input in;
    in.u8(0)
        .u8(cap_sel)
        .u8(over)
        .u8(state)
        .u8(slots)
        .put<uint64_t>(base)
        .u8(release_mode)
        .u8(batch);
    return in;
  }
  // Ops (see write_op): a frame of raw payload, an encoded record, garbage, a pad.
  Input& raw_frame(std::string_view payload, unsigned flags) {
    u8(0).put<uint16_t>(static_cast<uint16_t>(payload.size())).u8(flags);
    return text(payload);
  }
  Input& record(unsigned kind, std::string_view s, bool alt = false) {
    u8(1 | (kind << 2) | (alt ? 0x40 : 0)).u8(static_cast<unsigned>(s.size()));
    return text(s);
  }
  Input& garbage(std::string_view s) {
    u8(2).u8(static_cast<unsigned>(s.size()));
    return text(s);
  }
  Input& pad() { return u8(3); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

void ring_seeds(const fs::path& dir) {
  auto save = [&](const char* name, const Input& in) {
    write_file(dir / name, in.bytes().data(), in.bytes().size());
  };
  // A finished ring holding one record of each kind.
  save("s_all_kinds", Input::header(0, 0, 1, 0, 0, 0, 1)
                          .record(1, "client-1")
                          .record(0, "hello\n")
                          .record(0, "oops\n", true)
                          .record(2, "42")
                          .record(3, "bad value")
                          .record(4, "name? ")
                          .record(5, ""));
  // Frames that wrap: start near the end of a 4 KiB ring, so a pad frame is needed.
  Input wrap = Input::header(0, 0, 0, 1, 4096 * 9 - 24, 1, 3);
  for (int i = 0; i < 6; ++i) wrap.record(0, std::string(100, static_cast<char>('a' + i)));
  save("s_wrap", wrap);
  // Raw payload frames with MORE / CONTINUED flags (one split write).
  save("s_split", Input::header(1, 0, 1, 0, 64, 2, 1)
                      .raw_frame("part one ", 1)
                      .raw_frame("part two ", 3)
                      .raw_frame("end", 2));
  save("s_explicit_pad",
       Input::header(0, 0, 0, 0, 4096 - 200, 0, 1).record(0, "x").pad().record(0, "y"));
  save("s_newest", Input::header(0, 0x40, 0, 0, 0, 0, 1).record(0, "skipped"));
  save("s_slots_taken", Input::header(0, 0, 0, 16, 0, 0, 1).record(0, "x"));
  save("s_high_positions", Input::header(2, 0, 1, 3, (1ull << 62) - 4096, 0, 1)
                               .record(0, "near the top of the position range"));
  save("s_garbage", Input::header(0, 0, 0, 0, 0, 0, 1)
                        .record(0, "ok")
                        .garbage("\xff\xff\x00\x00\x01\x00\x00\x00"));
  Input truncated = Input::header(0, 0x20, 0, 0, 0, 0, 1);
  truncated.put<uint16_t>(100).record(0, "x");
  save("s_truncated", truncated);
  Input bad_pos = Input::header(0, 0x80, 0, 0, 0, 0, 1);
  bad_pos.put<uint64_t>(8192).put<uint64_t>(0).record(0, "x");
  save("s_bad_positions", bad_pos);
  Input bad_hdr = Input::header(0, 0x07, 0, 0, 0, 0, 1);
  bad_hdr.put<uint64_t>(3000).put<uint32_t>(5000).u8(17).record(0, "x");
  save("s_bad_header", bad_hdr);
}

// Raw images (first byte 1) snapshotted from a real producer's shared memory.
void snapshot(const fs::path& path, const std::string& name) {
  std::ifstream in("/dev/shm/" + name, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.insert(bytes.begin(), 1);
  write_file(path, bytes.data(), bytes.size());
}

void raw_ring_seeds(const fs::path& dir) {
  std::string name = "shmrepl.seed." + std::to_string(::getpid());
  shm::ProducerOptions opt;
  opt.capacity = 4096;
  opt.execution_id = 7;
  {
    auto p = shm::Producer::create(name, opt);
    std::vector<std::byte> v;
    for (uint64_t seq = 0; seq < 3; ++seq)
      p->write(output(seq, SHMREPL_STREAM_STDOUT, "line " + std::to_string(seq) + "\n"));
    records::encode_finished(v, {7, 3, 0}, SHMREPL_FINISH_OK, 0, 5);
    p->write(v);
    p->finish();
    snapshot(dir / "r_finished", name);
  }
  {
    // A reader keeps up, so the producer wraps around the 4 KiB data area.
    auto p = shm::Producer::create(name, opt);
    shmrepl_status_t st{};
    std::string err;
    auto r = shm::Reader::open(name, SHMREPL_START_OLDEST, &st, &err);
    if (r == nullptr) {
      std::fprintf(stderr, "make_seeds: %s\n", err.c_str());
      std::exit(1);
    }
    for (uint64_t seq = 0; seq < 40; ++seq) {
      p->write(output(seq, SHMREPL_STREAM_STDOUT, std::string(200, 'w')));
      shm::Frame f{};
      while (r->next(0, &f, &err) == SHMREPL_OK) r->release(1);
    }
    r.reset();
    snapshot(dir / "r_wrapped", name);
  }
}

#if SHMREPL_HAVE_CONTROL
void control_seeds(const fs::path& dir) {
  namespace control = shmrepl::control;
  std::vector<std::pair<const char*, control::Frame>> frames;
  frames.emplace_back("hello", control::hello(1, SHMREPL_ABI_VERSION, 4242));
  frames.emplace_back("open_session", control::open_session(2));
  control::ExecuteFields e;
  e.session_id = 1;
  e.code = "print('hi')\n1 + 1";
  e.client_execution_id = "cell-7";
  e.filename = "<cell>";
  e.argv = {"prog", "--flag", "x"};
  e.script = true;
  e.ring_capacity = 1 << 20;
  frames.emplace_back("execute", control::execute(3, e));
  control::ExecuteFields bare;
  bare.session_id = 2;
  bare.code = "x";
  frames.emplace_back("execute_bare", control::execute(4, bare));
  frames.emplace_back("cancel", control::cancel(5, 9));
  frames.emplace_back("release", control::release(6, 9));
  frames.emplace_back("close_session", control::close_session(7, 1));
  frames.emplace_back("shutdown", control::shutdown(8));
  frames.emplace_back("hello_reply", control::hello_reply(1, SHMREPL_ABI_VERSION, 77, "0.1.0"));
  frames.emplace_back("session_opened", control::session_opened(2, 1, "shmrepl.1000.77.0"));
  frames.emplace_back("accepted", control::accepted(3, 9, "shmrepl.1000.77.9"));
  frames.emplace_back("ok", control::ok(5));
  frames.emplace_back("error", control::error(4, SHMREPL_E_NOT_FOUND, "no session 2"));
  frames.emplace_back("input_reply", control::input_reply(9, 9, "an answer\n"));
  control::SessionFields tty;
  tty.stdin = tty.stdout_tty = tty.stderr_tty = true;
  frames.emplace_back("open_session_tty", control::open_session(10, tty));
  control::Frame stream;
  for (const auto& [name, frame] : frames) {
    write_file(dir / name, frame.data(), frame.size());
    if (stream.size() < 512) stream.insert(stream.end(), frame.begin(), frame.end());
  }
  write_file(dir / "stream", stream.data(), stream.size());
  // A stream that ends inside a frame (E_AGAIN) and one with a zero prefix.
  write_file(dir / "stream_partial", stream.data(), stream.size() - 3);
  const uint8_t zero[4] = {0, 0, 0, 0};
  write_file(dir / "zero_length", zero, sizeof zero);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <fuzz/corpus>\n", argv[0]);
    return 2;
  }
  fs::path root(argv[1]);
  fs::create_directories(root / "fuzz_record");
  fs::create_directories(root / "fuzz_ring_image");
  record_seeds(root / "fuzz_record");
  ring_seeds(root / "fuzz_ring_image");
  raw_ring_seeds(root / "fuzz_ring_image");
#if SHMREPL_HAVE_CONTROL
  fs::create_directories(root / "fuzz_control");
  control_seeds(root / "fuzz_control");
#endif
  return 0;
}
