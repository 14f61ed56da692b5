// Fuzzes the reader side of the control protocol without a socket: the framing
// (parse_prefix), the verifier (verify) and verify_stream, over an arbitrary byte
// stream as the engine (or a client) receives it. Checks: no crash, no read outside a
// message (each body gets a buffer of exactly its size), every string of an accepted
// message lies inside it, verify_stream agrees with frame-by-frame verify, and an
// accepted message rebuilt with the builders verifies again with the same fields.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control.hpp"
#include "fuzz_common.hpp"

namespace {

namespace control = shmrepl::control;
namespace ctl = shmrepl::ctl;
using shmrepl::fuzz::touch;
using shmrepl::fuzz::within;

// An 8-byte aligned copy of exactly `n` bytes (verify() requires the alignment).
struct Body {
  explicit Body(std::span<const uint8_t> src)
      : p(static_cast<uint8_t*>(::operator new[](src.size(), std::align_val_t{8}))),
        n(src.size()) {
    if (n > 0) std::memcpy(p, src.data(), n);
  }
  ~Body() { ::operator delete[](p, std::align_val_t{8}); }
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;
  std::span<const uint8_t> span() const { return {p, n}; }
  uint8_t* p;
  std::size_t n;
};

std::string_view view(const flatbuffers::String* s, const Body& body) {
  if (s == nullptr) return {};
  SHMREPL_FUZZ_CHECK(within(s->data(), s->size() + 1, body.p, body.n));  // + its NUL
  touch(s->data(), s->size());
  return {s->data(), s->size()};
}

// Every field of an accepted message, as the engine or a client would read them.
struct Fields {
  uint64_t request_id = 0;
  ctl::Body type = ctl::Body::NONE;
  uint64_t id = 0;  // session / execution id, abi version, or error code
  uint32_t a = 0, b = 0;
  bool flag = false;
  std::vector<std::string_view> strings;
  std::vector<std::string_view> argv;
  bool operator==(const Fields&) const = default;
};

Fields read_fields(const ctl::Message* m, const Body& body) {
  Fields f;
  f.request_id = m->request_id();
  f.type = m->body_type();
  switch (f.type) {
    case ctl::Body::Hello: {
      const auto* h = m->body_as_Hello();
      f.a = h->abi_version();
      f.b = h->pid();
      break;
    }
    case ctl::Body::Execute: {
      const auto* e = m->body_as_Execute();
      f.id = e->session_id();
      f.flag = e->script();
      f.strings = {view(e->code(), body), view(e->client_execution_id(), body),
                   view(e->filename(), body)};
      if (e->argv() != nullptr)
        for (const auto* s : *e->argv()) f.argv.push_back(view(s, body));
      f.a = static_cast<uint32_t>(e->ring_capacity());
      f.b = static_cast<uint32_t>(e->ring_capacity() >> 32);
      break;
    }
    case ctl::Body::Cancel: f.id = m->body_as_Cancel()->execution_id(); break;
    case ctl::Body::Release: f.id = m->body_as_Release()->execution_id(); break;
    case ctl::Body::CloseSession: f.id = m->body_as_CloseSession()->session_id(); break;
    case ctl::Body::HelloReply: {
      const auto* h = m->body_as_HelloReply();
      f.a = h->abi_version();
      f.b = h->engine_pid();
      f.strings = {view(h->engine_version(), body)};
      break;
    }
    case ctl::Body::SessionOpened: {
      const auto* s = m->body_as_SessionOpened();
      f.id = s->session_id();
      f.strings = {view(s->background_ring(), body)};
      break;
    }
    case ctl::Body::Accepted: {
      const auto* a = m->body_as_Accepted();
      f.id = a->execution_id();
      f.strings = {view(a->ring_name(), body)};
      break;
    }
    case ctl::Body::Error: {
      const auto* e = m->body_as_Error();
      f.id = static_cast<uint64_t>(static_cast<int64_t>(e->code()));
      f.strings = {view(e->message(), body)};
      break;
    }
    case ctl::Body::InputReply: {
      const auto* r = m->body_as_InputReply();
      f.id = r->execution_id();
      f.strings = {view(r->text(), body)};
      break;
    }
    case ctl::Body::OpenRing: f.strings = {view(m->body_as_OpenRing()->name(), body)}; break;
    default: break;  // OpenSession, Shutdown, Ok: no fields
  }
  return f;
}

control::Frame rebuild(const Fields& f) {
  auto s = [&f](std::size_t i) { return i < f.strings.size() ? f.strings[i] : std::string_view(); };
  switch (f.type) {
    case ctl::Body::Hello: return control::hello(f.request_id, f.a, f.b);
    case ctl::Body::OpenSession: return control::open_session(f.request_id);
    case ctl::Body::Execute: {
      control::ExecuteFields e;
      e.session_id = f.id;
      e.code = s(0);
      e.client_execution_id = s(1);
      e.filename = s(2);
      e.argv = f.argv;
      e.script = f.flag;
      e.ring_capacity = (uint64_t{f.b} << 32) | f.a;
      return control::execute(f.request_id, e);
    }
    case ctl::Body::Cancel: return control::cancel(f.request_id, f.id);
    case ctl::Body::Release: return control::release(f.request_id, f.id);
    case ctl::Body::CloseSession: return control::close_session(f.request_id, f.id);
    case ctl::Body::Shutdown: return control::shutdown(f.request_id);
    case ctl::Body::HelloReply: return control::hello_reply(f.request_id, f.a, f.b, s(0));
    case ctl::Body::SessionOpened: return control::session_opened(f.request_id, f.id, s(0));
    case ctl::Body::Accepted: return control::accepted(f.request_id, f.id, s(0));
    case ctl::Body::Ok: return control::ok(f.request_id);
    case ctl::Body::Error:
      return control::error(f.request_id, static_cast<shmrepl_status_t>(static_cast<int64_t>(f.id)),
                            s(0));
    case ctl::Body::InputReply: return control::input_reply(f.request_id, f.id, s(0));
    case ctl::Body::OpenRing: return control::open_ring(f.request_id, s(0));
    default: return {};
  }
}

void check_round_trip(const Fields& f) {
  control::Frame frame = rebuild(f);
  SHMREPL_FUZZ_CHECK(frame.size() > control::kPrefixSize);
  uint32_t len = 0;
  std::string error;
  SHMREPL_FUZZ_CHECK(control::parse_prefix(std::span<const uint8_t, control::kPrefixSize>(
                                               frame.data(), control::kPrefixSize),
                                           &len, &error) == SHMREPL_OK);
  SHMREPL_FUZZ_CHECK(len == frame.size() - control::kPrefixSize);
  Body again(std::span<const uint8_t>(frame).subspan(control::kPrefixSize));
  const ctl::Message* m = control::verify(again.span(), &error);
  SHMREPL_FUZZ_CHECK(m != nullptr);
  SHMREPL_FUZZ_CHECK(read_fields(m, again) == f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  std::size_t stream_count = 0;
  std::string stream_error;
  const shmrepl_status_t stream_st = control::verify_stream(in, &stream_count, &stream_error);

  // The same stream frame by frame, each body in a buffer of exactly its size.
  std::size_t count = 0;
  shmrepl_status_t st = SHMREPL_OK;
  std::string error;
  while (!in.empty()) {
    if (in.size() < control::kPrefixSize) {
      st = SHMREPL_E_AGAIN;
      break;
    }
    uint32_t len = 0;
    st = control::parse_prefix(in.first<control::kPrefixSize>(), &len, &error);
    if (st != SHMREPL_OK) {
      SHMREPL_FUZZ_CHECK(st == SHMREPL_E_PROTOCOL || st == SHMREPL_E_TOO_LARGE);
      SHMREPL_FUZZ_CHECK(!error.empty());
      break;
    }
    SHMREPL_FUZZ_CHECK(len > 0 && len <= control::kMaxMessage);
    if (in.size() - control::kPrefixSize < len) {
      st = SHMREPL_E_AGAIN;
      break;
    }
    Body body(in.subspan(control::kPrefixSize, len));
    const ctl::Message* m = control::verify(body.span(), &error);
    if (m == nullptr) {
      SHMREPL_FUZZ_CHECK(!error.empty());
      st = SHMREPL_E_PROTOCOL;
      break;
    }
    SHMREPL_FUZZ_CHECK(within(m, 1, body.p, body.n));
    SHMREPL_FUZZ_CHECK(m->body_type() != ctl::Body::NONE && m->body() != nullptr);
    SHMREPL_FUZZ_CHECK(control::body_name(m->body_type()) != nullptr);
    (void)control::is_request(m->body_type());
    // A body type newer than this library verifies (forward compatibility) and has no
    // builder here; the engine answers it with an error.
    if (m->body_type() <= ctl::Body::MAX) check_round_trip(read_fields(m, body));
    ++count;
    in = in.subspan(control::kPrefixSize + len);
  }
  SHMREPL_FUZZ_CHECK(stream_st == st && stream_count == count);
  SHMREPL_FUZZ_CHECK(st == SHMREPL_OK || !stream_error.empty() || st == SHMREPL_E_AGAIN);
  return 0;
}
