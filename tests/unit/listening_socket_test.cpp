// hubflow/listening_socket.h: the binding under Context::listening_socket, and its errors for bad addresses.
#include "hubflow/listening_socket.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

namespace {

using hubflow::bind_listening_socket;
using hubflow::bound_port;

std::string error_of(const std::string& address) {
    try {
        ::close(bind_listening_socket(address));
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

TEST(ListeningSocket, BindsLoopbackV4AndV6AndAcceptsConnections) {
    const int fd = bind_listening_socket("127.0.0.1:0");
    const int port = bound_port(fd);
    ASSERT_GT(port, 0);
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    const int accepted = ::accept(fd, nullptr, nullptr);
    EXPECT_GE(accepted, 0);
    ::close(accepted);
    ::close(client);
    ::close(fd);

    // IPv6 where the machine has a loopback for it (some containers have none).
    const std::string v6_error = error_of("[::1]:0");
    EXPECT_TRUE(v6_error.empty() || v6_error.find("cannot listen on [::1]:0: ") == 0) << v6_error;
}

TEST(ListeningSocket, BadAddressesAreNamedWithTheReason) {
    EXPECT_EQ(error_of("localhost"), "cannot listen on localhost: expected host:port");
    EXPECT_EQ(error_of("[::1"), "cannot listen on [::1: expected [host]:port");
    EXPECT_EQ(error_of("127.0.0.1:99999"),
              "cannot listen on 127.0.0.1:99999: the port must be a number from 0 to 65535");
    EXPECT_EQ(error_of("127.0.0.1:http"), "cannot listen on 127.0.0.1:http: the port must be a number from 0 to 65535");
    EXPECT_NE(error_of("no-such-host.invalid:80").find("cannot listen on no-such-host.invalid:80: "),
              std::string::npos);
}

TEST(ListeningSocket, APortInUseIsRefusedWithTheSystemsReason) {
    const int fd = bind_listening_socket("127.0.0.1:0");
    const std::string address = "127.0.0.1:" + std::to_string(bound_port(fd));
    EXPECT_EQ(error_of(address), "cannot listen on " + address + ": Address already in use");
    ::close(fd);
}

}  // namespace
