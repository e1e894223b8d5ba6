#pragma once
// Writes the listener's side of the protocol. This is the only code that may write to the
// protocol channel: a single stray byte makes supervisord stop sending events for good.

#include "protocol/stream.hpp"

namespace crashmail::protocol {

class Writer {
public:
    explicit Writer(ByteSink& sink) : m_sink(sink) {}

    // "READY\n". Returns false if the channel is gone.
    bool ready() { return m_sink.write_all("READY\n"); }

    // "RESULT 2\nOK". crashmail never rejects an event: supervisord would redeliver a
    // rejected event at once, forever. Returns false if the channel is gone.
    bool ok() { return m_sink.write_all("RESULT 2\nOK"); }

    // "RESULT 2\nOKREADY\n": the answer and the next READY in one write (one system call
    // per event instead of two). supervisord 4 reads on past a RESULT in its buffer
    // (dispatchers.py: "keep going til its too short"), so this is the same as ok() then
    // ready().
    bool ok_and_ready() { return m_sink.write_all("RESULT 2\nOKREADY\n"); }

private:
    ByteSink& m_sink;
};

} // namespace crashmail::protocol
