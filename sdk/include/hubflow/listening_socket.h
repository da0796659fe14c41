#pragma once
// A listening TCP socket for a node that serves clients (SDK 1.3). Components get theirs from
// Context::listening_socket(), which lets the host hand it from a node to its successor on a reload; this is
// the plain binding underneath, for hosts and tests.

#include <string>

namespace hubflow {

// Binds and listens on `address`: "host:port" or "[v6 host]:port", numeric or a name; port 0 picks a free
// port. Returns the descriptor (close-on-exec, blocking, SO_REUSEADDR), which the caller owns. Throws
// std::runtime_error "cannot listen on <address>: <reason>".
int bind_listening_socket(const std::string& address, int backlog = 4096);

// The port a listening socket is bound to (useful after binding port 0); 0 when it cannot be read.
int bound_port(int fd);

}  // namespace hubflow
