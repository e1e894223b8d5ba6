#include "util/cacert.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

namespace crashmail {
namespace {

struct BioDeleter {
    void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
    void operator()(X509* certificate) const { X509_free(certificate); }
};

std::string errno_words(int error) {
    switch (error) {
    case ENOENT:
        return "no such file";
    case EACCES:
        return "permission denied";
    case EISDIR:
        return "is a directory";
    default:
        return std::strerror(error);
    }
}

// The reason of the oldest error in OpenSSL's queue of this thread ("" when none); the queue
// is left empty.
std::string openssl_reason() {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) {
        return {};
    }
    const char* reason = ERR_reason_error_string(code);
    return reason != nullptr ? reason : "error " + std::to_string(code);
}

} // namespace

std::expected<int, std::string> check_cacert(const std::string& path) {
    // open() first: its errno says why (fopen's BIO would hide it behind OpenSSL's words).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return std::unexpected(errno_words(errno));
    }
    struct stat status {};
    if (::fstat(fd, &status) != 0) {
        const int error = errno;
        ::close(fd);
        return std::unexpected(errno_words(error));
    }
    if (S_ISDIR(status.st_mode)) {
        ::close(fd);
        return std::unexpected(errno_words(EISDIR));
    }
    if (!S_ISREG(status.st_mode)) {
        ::close(fd);
        return std::unexpected("not a regular file");
    }
    std::string text;
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            return std::unexpected(errno_words(error));
        }
        if (n == 0) {
            break;
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);

    ERR_clear_error();
    std::unique_ptr<BIO, BioDeleter> bio(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    if (!bio) {
        return std::unexpected("cannot read it: out of memory");
    }
    int certificates = 0;
    for (;;) {
        std::unique_ptr<X509, X509Deleter> certificate(
            PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!certificate) {
            break;
        }
        ++certificates;
    }
    // The loop ends at the end of the data (PEM_R_NO_START_LINE) or at a bad certificate.
    const unsigned long code = ERR_peek_last_error();
    const bool end_of_data = code == 0 || (ERR_GET_LIB(code) == ERR_LIB_PEM &&
                                           ERR_GET_REASON(code) == PEM_R_NO_START_LINE);
    if (!end_of_data) {
        return std::unexpected("bad PEM certificate data: " + openssl_reason());
    }
    ERR_clear_error();
    if (certificates == 0) {
        return std::unexpected("no PEM certificate in it");
    }
    return certificates;
}

} // namespace crashmail
