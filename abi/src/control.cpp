#include "control.hpp"

#include <flatbuffers/flatbuffers.h>

#include <bit>
#include <cstring>

namespace shmrepl::control {

namespace {

static_assert(std::endian::native == std::endian::little, "the wire format is little-endian");

template <typename T>
Frame finish(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id, ctl::Body type,
             flatbuffers::Offset<T> body) {
  ctl::MessageBuilder mb(fbb);
  mb.add_request_id(request_id);
  mb.add_body_type(type);
  mb.add_body(body.Union());
  fbb.Finish(mb.Finish(), ctl::MessageIdentifier());
  const auto size = static_cast<uint32_t>(fbb.GetSize());
  Frame frame(kPrefixSize + size);
  std::memcpy(frame.data(), &size, kPrefixSize);
  std::memcpy(frame.data() + kPrefixSize, fbb.GetBufferPointer(), size);
  return frame;
}

flatbuffers::Offset<flatbuffers::String> str(flatbuffers::FlatBufferBuilder& fbb, std::string_view s) {
  return fbb.CreateString(s.data(), s.size());
}

}  // namespace

Frame hello(uint64_t request_id, uint32_t abi_version, uint32_t pid) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return finish(fbb, request_id, ctl::Body::Hello, ctl::CreateHello(fbb, abi_version, pid));
}

Frame open_session(uint64_t request_id, const SessionFields& f) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto dir = f.working_dir.empty() ? 0 : str(fbb, f.working_dir);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> env = 0;
  if (f.set_env) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> items;
    items.reserve(f.env.size());
    for (std::string_view e : f.env) items.push_back(str(fbb, e));
    env = fbb.CreateVector(items);
  }
  return finish(
      fbb, request_id, ctl::Body::OpenSession,
      ctl::CreateOpenSession(fbb, dir, env, f.set_env, f.stdin, f.stdout_tty, f.stderr_tty));
}

Frame execute(uint64_t request_id, const ExecuteFields& f) {
  flatbuffers::FlatBufferBuilder fbb(f.code.size() + 512);
  auto code = str(fbb, f.code);
  auto cid = f.client_execution_id.empty() ? 0 : str(fbb, f.client_execution_id);
  auto filename = f.filename.empty() ? 0 : str(fbb, f.filename);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> argv = 0;
  if (!f.argv.empty()) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> items;
    items.reserve(f.argv.size());
    for (std::string_view a : f.argv) items.push_back(str(fbb, a));
    argv = fbb.CreateVector(items);
  }
  return finish(fbb, request_id, ctl::Body::Execute,
                ctl::CreateExecute(fbb, f.session_id, code, cid, filename, argv, f.script,
                                   f.ring_capacity, f.timeout_ns, f.memory_limit));
}

Frame cancel(uint64_t request_id, uint64_t execution_id) {
  flatbuffers::FlatBufferBuilder fbb(64);
  return finish(fbb, request_id, ctl::Body::Cancel, ctl::CreateCancel(fbb, execution_id));
}

Frame release(uint64_t request_id, uint64_t execution_id) {
  flatbuffers::FlatBufferBuilder fbb(64);
  return finish(fbb, request_id, ctl::Body::Release, ctl::CreateRelease(fbb, execution_id));
}

Frame close_session(uint64_t request_id, uint64_t session_id) {
  flatbuffers::FlatBufferBuilder fbb(64);
  return finish(fbb, request_id, ctl::Body::CloseSession, ctl::CreateCloseSession(fbb, session_id));
}

Frame shutdown(uint64_t request_id) {
  flatbuffers::FlatBufferBuilder fbb(64);
  return finish(fbb, request_id, ctl::Body::Shutdown, ctl::CreateShutdown(fbb));
}

Frame input_reply(uint64_t request_id, uint64_t execution_id, std::string_view text) {
  flatbuffers::FlatBufferBuilder fbb(text.size() + 128);
  auto t = str(fbb, text);
  return finish(fbb, request_id, ctl::Body::InputReply,
                ctl::CreateInputReply(fbb, execution_id, t));
}

Frame open_ring(uint64_t request_id, std::string_view name) {
  flatbuffers::FlatBufferBuilder fbb(name.size() + 96);
  auto n = str(fbb, name);
  return finish(fbb, request_id, ctl::Body::OpenRing, ctl::CreateOpenRing(fbb, n));
}

Frame hello_reply(uint64_t request_id, uint32_t abi_version, uint32_t engine_pid,
                  std::string_view engine_version) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto v = str(fbb, engine_version);
  return finish(fbb, request_id, ctl::Body::HelloReply,
                ctl::CreateHelloReply(fbb, abi_version, engine_pid, v));
}

Frame session_opened(uint64_t request_id, uint64_t session_id, std::string_view background_ring,
                     uint32_t worker_pid) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto ring = background_ring.empty() ? 0 : str(fbb, background_ring);
  return finish(fbb, request_id, ctl::Body::SessionOpened,
                ctl::CreateSessionOpened(fbb, session_id, ring, worker_pid));
}

Frame accepted(uint64_t request_id, uint64_t execution_id, std::string_view ring_name, bool same_ring) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto ring = str(fbb, ring_name);
  return finish(fbb, request_id, ctl::Body::Accepted, ctl::CreateAccepted(fbb, execution_id, ring, same_ring));
}

Frame ok(uint64_t request_id) {
  flatbuffers::FlatBufferBuilder fbb(64);
  return finish(fbb, request_id, ctl::Body::Ok, ctl::CreateOk(fbb));
}

Frame error(uint64_t request_id, shmrepl_status_t code, std::string_view message) {
  flatbuffers::FlatBufferBuilder fbb(message.size() + 128);
  auto m = str(fbb, message);
  return finish(fbb, request_id, ctl::Body::Error, ctl::CreateError(fbb, code, m));
}

shmrepl_status_t parse_prefix(std::span<const uint8_t, kPrefixSize> prefix, uint32_t* length,
                              std::string* error_text) {
  uint32_t n = 0;
  std::memcpy(&n, prefix.data(), kPrefixSize);
  *length = n;
  if (n > kMaxMessage) {
    *error_text = "control message of " + std::to_string(n) + " bytes exceeds the limit of " +
                  std::to_string(kMaxMessage);
    return SHMREPL_E_TOO_LARGE;
  }
  if (n == 0) {
    *error_text = "empty control message";
    return SHMREPL_E_PROTOCOL;
  }
  return SHMREPL_OK;
}

const ctl::Message* verify(std::span<const uint8_t> body, std::string* error_text) noexcept {
  if (body.size() < 8 || body.size() > kMaxMessage) {
    *error_text = "control message has a bad size";
    return nullptr;
  }
  if (reinterpret_cast<uintptr_t>(body.data()) % 8 != 0) {
    *error_text = "control message buffer is not aligned";
    return nullptr;
  }
  flatbuffers::Verifier verifier(body.data(), body.size());
  if (!ctl::VerifyMessageBuffer(verifier)) {
    *error_text = "control message failed verification";
    return nullptr;
  }
  const ctl::Message* m = ctl::GetMessage(body.data());
  // An unknown union member verifies (for forward compatibility) but has no body.
  if (m->body_type() == ctl::Body::NONE || m->body() == nullptr) {
    *error_text = "control message has no known body";
    return nullptr;
  }
  return m;
}

bool is_request(ctl::Body type) noexcept {
  switch (type) {
    case ctl::Body::Hello:
    case ctl::Body::OpenSession:
    case ctl::Body::Execute:
    case ctl::Body::Cancel:
    case ctl::Body::Release:
    case ctl::Body::CloseSession:
    case ctl::Body::Shutdown:
    case ctl::Body::InputReply:
    case ctl::Body::OpenRing:
      return true;
    default:
      return false;
  }
}

const char* body_name(ctl::Body type) noexcept {
  auto i = static_cast<std::size_t>(type);
  if (i > static_cast<std::size_t>(ctl::Body::MAX)) return "unknown";
  return ctl::EnumNamesBody()[i];
}

shmrepl_status_t verify_stream(std::span<const uint8_t> data, std::size_t* count,
                               std::string* error_text) {
  *count = 0;
  std::vector<uint8_t> body;
  while (!data.empty()) {
    if (data.size() < kPrefixSize) return SHMREPL_E_AGAIN;
    uint32_t len = 0;
    shmrepl_status_t st = parse_prefix(data.first<kPrefixSize>(), &len, error_text);
    if (st != SHMREPL_OK) return st;
    if (data.size() - kPrefixSize < len) return SHMREPL_E_AGAIN;
    body.assign(data.begin() + kPrefixSize, data.begin() + kPrefixSize + len);
    if (verify(body, error_text) == nullptr) return SHMREPL_E_PROTOCOL;
    ++*count;
    data = data.subspan(kPrefixSize + len);
  }
  return SHMREPL_OK;
}

}  // namespace shmrepl::control
