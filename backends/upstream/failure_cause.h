// failure_cause.h: why an upstream connection dropped its socket (or refused a send). Stats
// and logs key on the cause, never on the wording of the message clients see.
#pragma once

#include <cstdint>
#include <string_view>

namespace backends::upstream {

enum class FailureCause : uint8_t {
  None,
  Resolve,           // the host name did not resolve
  Connect,           // the connect was refused or could not start
  ConnectTimeout,
  Closed,            // EOF from the backend
  Read,
  Write,
  ReplyTimeout,
  Protocol,          // unparseable or unsolicited bytes
  HandshakeRefused,  // AUTH/SELECT/HELLO answered with an error
  Removed,           // closed by the proxy: reload, shutdown or the end of a dedicated link
  Socket,            // the local side could not set the socket up
  Tls,               // the TLS handshake failed (certificate, protocol version, ...)
};

// Short, stable snake_case names: they become stats keys, so never rename one.
constexpr std::string_view failureCauseName(FailureCause cause) {
  switch (cause) {
    case FailureCause::None: return "none";
    case FailureCause::Resolve: return "resolve";
    case FailureCause::Connect: return "connect";
    case FailureCause::ConnectTimeout: return "connect_timeout";
    case FailureCause::Closed: return "closed";
    case FailureCause::Read: return "read";
    case FailureCause::Write: return "write";
    case FailureCause::ReplyTimeout: return "reply_timeout";
    case FailureCause::Protocol: return "protocol";
    case FailureCause::HandshakeRefused: return "handshake_refused";
    case FailureCause::Removed: return "removed";
    case FailureCause::Socket: return "socket";
    case FailureCause::Tls: return "tls";
  }
  return "unknown";  // only for a value cast from outside the enum
}

constexpr bool isTimeout(FailureCause cause) {
  return cause == FailureCause::ConnectTimeout || cause == FailureCause::ReplyTimeout;
}

}  // namespace backends::upstream
