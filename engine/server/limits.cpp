#include "limits.hpp"

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

}  // namespace shmrepl::server
