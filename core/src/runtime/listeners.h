#pragma once
// The listening sockets of the running graph's nodes (Context::listening_socket), kept by the host so that a
// reload hands a replaced node's socket to its successor: the socket stays open across the switch, and
// connections made while neither node accepts wait in its backlog instead of being refused.

#include <map>
#include <mutex>
#include <set>
#include <string>

namespace hubflow::core {

class Listeners {
public:
    Listeners() = default;
    Listeners(const Listeners&) = delete;
    Listeners& operator=(const Listeners&) = delete;
    ~Listeners();

    // A descriptor (a dup the caller closes) of the socket for node `node` on `address`, binding it on first
    // use. A fixed port is one socket whichever node asks (a renamed node takes it over; two running nodes
    // never claim one address, configuration validation sees to that); port 0 is one socket per node name, so
    // a successor keeps its port. Throws std::runtime_error naming the address.
    int acquire(const std::string& node, const std::string& address);

    // Closes every socket not asked for, since the last keep_only(), by one of `nodes`: called once a reload
    // has started the new graph (what a removed or renamed node held is released then).
    void keep_only(const std::set<std::string>& nodes);

private:
    struct Socket {
        int fd = -1;
        std::set<std::string> users;  // node names that asked for it
    };
    static std::string key_of(const std::string& node, const std::string& address);

    std::mutex mutex_;
    std::map<std::string, Socket> sockets_;
};

}  // namespace hubflow::core
