#pragma once
// The byte streams the protocol runs over. supervisord gives us pipes on fd 0 and fd 1; tests
// give strings. Both sides are tiny interfaces so the listener loop never touches a global.

#include <cstddef>
#include <string>
#include <string_view>

namespace crashmail::protocol {

class ByteSource {
public:
    virtual ~ByteSource() = default;
    // Reads at most `size` bytes into `buffer`. Returns the number read, 0 at end of input,
    // or -1 with errno set on error. Blocks until at least one byte or EOF is available.
    virtual std::ptrdiff_t read_some(char* buffer, std::size_t size) = 0;
};

class ByteSink {
public:
    virtual ~ByteSink() = default;
    // Writes all of `bytes`. Returns false (errno set) if the peer is gone or a write failed.
    virtual bool write_all(std::string_view bytes) = 0;
};

// A file descriptor, not owned. read_some() retries on EINTR. When `stop_fd` is given, `fd`
// is made non-blocking: read_some() reads at once when input is there (one system call per
// read in a busy stream) and otherwise waits in poll() for input or for `stop_fd` (a
// self-pipe written by a signal handler); a readable `stop_fd` reports end of input, so a
// waiting read can be interrupted for an orderly stop.
class FdSource final : public ByteSource {
public:
    explicit FdSource(int fd, int stop_fd = -1);
    std::ptrdiff_t read_some(char* buffer, std::size_t size) override;

private:
    int m_fd;
    int m_stop_fd;
};

// A file descriptor, not owned. write_all() retries on EINTR and short writes.
class FdSink final : public ByteSink {
public:
    explicit FdSink(int fd) : m_fd(fd) {}
    bool write_all(std::string_view bytes) override;

private:
    int m_fd;
};

// In-memory source for tests and the fuzzer. `chunk` limits how much one read returns, to
// exercise reads that split headers and characters.
class StringSource final : public ByteSource {
public:
    explicit StringSource(std::string data, std::size_t chunk = 4096)
        : m_data(std::move(data)), m_chunk(chunk) {}
    std::ptrdiff_t read_some(char* buffer, std::size_t size) override;

private:
    std::string m_data;
    std::size_t m_chunk;
    std::size_t m_offset = 0;
};

// In-memory sink for tests: records everything written.
class StringSink final : public ByteSink {
public:
    bool write_all(std::string_view bytes) override {
        m_data += bytes;
        return true;
    }
    const std::string& data() const { return m_data; }

private:
    std::string m_data;
};

} // namespace crashmail::protocol
