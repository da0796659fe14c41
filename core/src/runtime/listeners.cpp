#include "runtime/listeners.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "hubflow/listening_socket.h"

namespace hubflow::core {

Listeners::~Listeners() {
    for (auto& [key, socket] : sockets_)
        ::close(socket.fd);
}

std::string Listeners::key_of(const std::string& node, const std::string& address) {
    const bool any_port = address.size() >= 2 && address.compare(address.size() - 2, 2, ":0") == 0;
    return any_port ? node + "\n" + address : address;
}

int Listeners::acquire(const std::string& node, const std::string& address) {
    std::lock_guard lock(mutex_);
    const std::string key = key_of(node, address);
    auto it = sockets_.find(key);
    if (it == sockets_.end()) it = sockets_.emplace(key, Socket{bind_listening_socket(address), {}}).first;
    it->second.users.insert(node);
    const int fd = ::fcntl(it->second.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("cannot listen on " + address + ": " + std::strerror(errno));
    return fd;
}

void Listeners::keep_only(const std::set<std::string>& nodes) {
    std::lock_guard lock(mutex_);
    for (auto it = sockets_.begin(); it != sockets_.end();) {
        std::erase_if(it->second.users, [&](const std::string& user) { return nodes.count(user) == 0; });
        if (it->second.users.empty()) {
            ::close(it->second.fd);
            it = sockets_.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace hubflow::core
