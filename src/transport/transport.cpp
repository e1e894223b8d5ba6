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

std::string Failure::describe() const {
    return message + " (" + std::string(kind_name()) + ")";
}

} // namespace crashmail
