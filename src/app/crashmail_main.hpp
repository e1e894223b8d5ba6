#pragma once

namespace crashmail {

// The whole program: parses argv, builds the channels, then either runs --test or serves
// supervisord on stdin/stdout until end of input. Returns a sysexits.h exit status. Fatal
// start-up errors are reported here, once, as "crashmail: error: ...".
int crashmail_main(int argc, const char* const* argv);

} // namespace crashmail
