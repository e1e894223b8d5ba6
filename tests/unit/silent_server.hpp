#pragma once
// A TCP server on 127.0.0.1 for unit tests that accepts every connection, reads and drops
// what it is sent, and never answers: the peer that makes a client wait until its time limit
// (or a cancellation) ends the wait.

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace crashmail::testing {

class SilentServer {
public:
    SilentServer() {
        m_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(m_listener >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = 0;
        REQUIRE(::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(m_listener, 8) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(m_listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        m_port = ntohs(address.sin_port);
        m_thread = std::thread([this] { serve(); });
    }

    ~SilentServer() {
        m_stop = true;
        if (m_thread.joinable()) {
            m_thread.join();
        }
        for (int fd : m_connections) {
            ::close(fd);
        }
        ::close(m_listener);
    }

    SilentServer(const SilentServer&) = delete;
    SilentServer& operator=(const SilentServer&) = delete;

    int port() const { return m_port; }
    // "127.0.0.1:<port>".
    std::string address() const { return "127.0.0.1:" + std::to_string(m_port); }
    // How many connections it has accepted so far.
    int accepted() const { return m_accepted.load(); }

private:
    void serve() {
        while (!m_stop) {
            std::vector<pollfd> watch{{m_listener, POLLIN, 0}};
            for (int fd : m_connections) {
                watch.push_back({fd, POLLIN, 0});
            }
            if (::poll(watch.data(), watch.size(), 50) <= 0) {
                continue; // looks at m_stop at least every 50 ms
            }
            if ((watch[0].revents & POLLIN) != 0) {
                const int fd = ::accept4(m_listener, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) {
                    m_connections.push_back(fd);
                    ++m_accepted;
                }
            }
            for (std::size_t i = 1; i < watch.size(); ++i) {
                if (watch[i].revents == 0) {
                    continue;
                }
                std::array<char, 4096> chunk{};
                const ssize_t n = ::recv(watch[i].fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    ::close(watch[i].fd); // the client has gone
                    std::erase(m_connections, watch[i].fd);
                }
            }
        }
    }

    int m_listener = -1;
    int m_port = 0;
    std::atomic<bool> m_stop{false};
    std::atomic<int> m_accepted{0};
    std::vector<int> m_connections; // only the server thread touches it until the join
    std::thread m_thread;
};

// Waits until `done()` holds or `limit` has passed (looking every 10 ms); returns done().
template <typename Done> bool wait_until(Done&& done, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
}

} // namespace crashmail::testing
