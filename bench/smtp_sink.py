"""SMTP servers on 127.0.0.1 for crashmail's benchmarks (Debian's python3-aiosmtpd; run with
/usr/bin/python3).

    with TimedSink(delay=0.0) as sink:     # healthy; delay=0.3 takes 0.3 s per message
        ... crashmail --smtp sink.url ...
        sink.accepted -> [(accepted_ns, serial or None, message_id)]
    with SilentSink() as sink: ...          # accepts TCP and never says a word

Each accepted message is recorded with the wall-clock time (time.time_ns()) at which the
server answered 250 to its DATA, and the supervisord serial taken from crashmail's
Message-ID (<s{serial}.{hash}@host>), so a benchmark can match it to the time it sent the
event. Standalone: `smtp_sink.py healthy|slow|silent` prints the URL and serves until killed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import sys
import threading
import time

from aiosmtpd.controller import Controller

logging.getLogger("mail.log").setLevel(logging.CRITICAL)

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]*)>", re.IGNORECASE | re.MULTILINE)
_SERIAL = re.compile(r"^s(\d+)\.")


class _Handler:
    def __init__(self, sink: "TimedSink"):
        self._sink = sink

    async def handle_DATA(self, server, session, envelope):
        if self._sink.delay > 0:
            await asyncio.sleep(self._sink.delay)
        now = time.time_ns()
        found = _MESSAGE_ID.search(envelope.original_content or b"")
        message_id = found.group(1).decode("ascii", "replace") if found else ""
        serial_match = _SERIAL.match(message_id)
        serial = int(serial_match.group(1)) if serial_match else None
        with self._sink.lock:
            self._sink.accepted.append((now, serial, message_id))
        return "250 2.0.0 accepted"


class _Controller(Controller):
    def __init__(self, handler):
        super().__init__(handler, hostname="127.0.0.1", port=0, ready_timeout=30,
                         server_hostname="sink.bench")

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class TimedSink:
    """A real SMTP server that takes `delay` seconds per message and records acceptances."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.lock = threading.Lock()
        self.accepted: list[tuple[int, int | None, str]] = []
        self._controller = _Controller(_Handler(self))
        self.port = 0

    def start(self) -> "TimedSink":
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> "TimedSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return "smtp://127.0.0.1:%d" % self.port

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def snapshot(self) -> list[tuple[int, int | None, str]]:
        with self.lock:
            return list(self.accepted)

    def reset(self) -> None:
        with self.lock:
            self.accepted.clear()


def _test_smtp_sink():
    """tests/integration/smtp_sink.py, the tests' SMTP servers (loaded by path: it has the
    same module name as this file)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "integration", "smtp_sink.py")
    spec = importlib.util.spec_from_file_location("crashmail_tests_smtp_sink", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# Listens on 127.0.0.1, accepts every connection and never sends a byte; `.accepted` counts
# the connections. The tests' server, not a copy of it.
SilentSink = _test_smtp_sink().SilentServer


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "healthy"
    server = SilentSink() if kind == "silent" else TimedSink(0.3 if kind == "slow" else 0.0)
    with server:
        print(server.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
