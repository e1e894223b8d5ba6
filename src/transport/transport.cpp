#include "transport/transport.hpp"

namespace crashmail {

std::string_view Failure::kind_name() const {
    switch (kind) {
    case Kind::transient:
        return "transient";
    case Kind::timeout:
        return "timeout";
    case Kind::permanent:
        return "permanent";
    }
    return "transient";
}

Failure redacted(Failure failure, const Secrets& secrets) {
    failure.message = secrets.redact(failure.message);
    return failure;
}

Receipt redacted(Receipt receipt, const Secrets& secrets) {
    for (Refusal& refusal : receipt.refused) {
        refusal.failure = redacted(std::move(refusal.failure), secrets);
    }
    for (std::string& note : receipt.notes) {
        note = secrets.redact(note);
    }
    return receipt;
}

std::string Failure::describe() const {
    return message + " (" + std::string(kind_name()) + ")";
}

} // namespace crashmail
