#include "limits.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace shmrepl::server {

bool Quota::add_connection(pid_t client, std::string* why) {
  std::lock_guard lock(mu_);
  if (connections_ >= limits_.max_connections) {
    *why = "the engine serves its maximum of " + std::to_string(limits_.max_connections) +
           " connections (--max-connections)";
    return false;
  }
  Use& u = clients_[client];
  if (u.connections >= limits_.max_client_connections) {
    *why = "this process already has " + std::to_string(u.connections) +
           " connections to the engine, its maximum (--max-client-connections)";
    forget_if_unused(client);
    return false;
  }
  ++u.connections;
  ++connections_;
  return true;
}

void Quota::remove_connection(pid_t client) noexcept {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second.connections == 0) return;
  --it->second.connections;
  --connections_;
  forget_if_unused(client);
}

bool Quota::add_session(pid_t client, std::string* why) {
  std::lock_guard lock(mu_);
  if (sessions_ >= limits_.max_sessions) {
    *why = "the engine runs its maximum of " + std::to_string(limits_.max_sessions) +
           " sessions (--max-sessions)";
    return false;
  }
  Use& u = clients_[client];
  if (u.sessions >= limits_.max_client_sessions) {
    *why = "this process already has " + std::to_string(u.sessions) +
           " open sessions, its maximum (--max-client-sessions)";
    forget_if_unused(client);
    return false;
  }
  ++u.sessions;
  ++sessions_;
  return true;
}

void Quota::remove_session(pid_t client) noexcept {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second.sessions == 0) return;
  --it->second.sessions;
  --sessions_;
  forget_if_unused(client);
}

void Quota::forget_if_unused(pid_t client) {
  auto it = clients_.find(client);
  if (it != clients_.end() && it->second.connections == 0 && it->second.sessions == 0)
    clients_.erase(it);
}

namespace {

// "1.5 GiB (1610612736 bytes)": sizes in the messages, readable and exact.
std::string size_text(uint64_t bytes) {
  static const char* const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  std::size_t u = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return std::to_string(bytes) + " bytes";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g %s (%llu bytes)", v, units[u], static_cast<unsigned long long>(bytes));
  return buf;
}

uint64_t saturating_add(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

}  // namespace

bool RingBudget::reserve(pid_t client, uint64_t bytes, std::string* why) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  const uint64_t mine = it == clients_.end() ? 0 : it->second;
  // Compared as "what is left", so that no sum can overflow.
  if (mine > client_limit_ || bytes > client_limit_ - mine) {
    *why = "a ring of " + size_text(bytes) + " would pass this process's limit of " + size_text(client_limit_) +
           " of rings (--max-client-ring-bytes); its sessions hold " + size_text(mine) +
           ": release executions or close sessions";
    return false;
  }
  if (used_ > limit_ || bytes > limit_ - used_) {
    *why = "a ring of " + size_text(bytes) + " would pass the engine's limit of " + size_text(limit_) +
           " of rings in all (--max-ring-bytes); its sessions hold " + size_text(used_);
    return false;
  }
  if (bytes == 0) return true;
  clients_[client] = mine + bytes;
  used_ += bytes;
  return true;
}

void RingBudget::charge(pid_t client, uint64_t bytes) noexcept {
  if (bytes == 0) return;
  std::lock_guard lock(mu_);
  uint64_t& mine = clients_[client];
  mine = saturating_add(mine, bytes);
  used_ = saturating_add(used_, bytes);
}

void RingBudget::release(pid_t client, uint64_t bytes) noexcept {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  if (it == clients_.end()) return;
  const uint64_t given = std::min(bytes, it->second);
  it->second -= given;
  used_ -= std::min(given, used_);
  if (it->second == 0) clients_.erase(it);
}

uint64_t RingBudget::used() noexcept {
  std::lock_guard lock(mu_);
  return used_;
}

uint64_t RingBudget::used_by(pid_t client) noexcept {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  return it == clients_.end() ? 0 : it->second;
}

}  // namespace shmrepl::server
