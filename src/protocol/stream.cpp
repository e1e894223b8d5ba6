#include "protocol/stream.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace crashmail::protocol {

FdSource::FdSource(int fd, int stop_fd) : m_fd(fd), m_stop_fd(stop_fd) {
    if (m_stop_fd >= 0) {
        int flags = ::fcntl(m_fd, F_GETFL);
        if (flags >= 0) {
            ::fcntl(m_fd, F_SETFL, flags | O_NONBLOCK);
        }
    }
}

std::ptrdiff_t FdSource::read_some(char* buffer, std::size_t size) {
    for (;;) {
        ssize_t n = ::read(m_fd, buffer, size);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || m_stop_fd < 0) {
            return -1;
        }
        // Nothing to read yet: wait for input or for the stop request.
        pollfd fds[2] = {{m_fd, POLLIN, 0}, {m_stop_fd, POLLIN, 0}};
        int ready = ::poll(fds, 2, -1);
        if (ready < 0 && errno != EINTR) {
            return -1;
        }
        if (ready > 0 && fds[1].revents != 0) {
            return 0;
        }
    }
}

bool FdSink::write_all(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(m_fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::ptrdiff_t StringSource::read_some(char* buffer, std::size_t size) {
    std::size_t n = std::min({size, m_chunk, m_data.size() - m_offset});
    std::memcpy(buffer, m_data.data() + m_offset, n);
    m_offset += n;
    return static_cast<std::ptrdiff_t>(n);
}

} // namespace crashmail::protocol
