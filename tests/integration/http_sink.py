"""A recording HTTP server on 127.0.0.1 for crashmail's webhook tests (standard library only).

    with HttpSink() as sink:                       # port 0: the kernel picks a free port
        sink.script(Reply(429, retry_after="1"), Reply(200))   # then the last reply repeats
        ... run crashmail --webhook sink.url("/hook") ...
        req = sink.wait_for_requests(1)[0]
        req.method, req.path, req.headers (case-insensitive), req.body (bytes), req.json()

    HttpSink(hang=True)        accepts every request, reads it, and never answers (until stop)
    HttpSink(tls=CertPair)     HTTPS with that certificate (e.g. smtp_sink.Certificates)

Every request is recorded before it is answered, even in hang mode. Every wait is bounded.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b"ok"
    retry_after: str | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


@dataclass
class Request:
    method: str
    path: str
    headers: Message  # case-insensitive: headers["x-crashmail-id"]
    body: bytes
    received_at: float  # time.monotonic()

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header_list(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def do_POST(self):
        self._handle()

    def do_GET(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def _handle(self):
        sink = self.server.sink
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, self.headers, body, time.monotonic())
        reply = sink._record(request)
        if sink.hang:
            # Never answer: hold the connection until the sink stops (bounded anyway).
            sink._stopping.wait(120)
            self.close_connection = True
            return
        if reply.delay:
            if sink._stopping.wait(reply.delay):
                self.close_connection = True
                return
        data = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if reply.retry_after is not None:
            self.send_header("Retry-After", reply.retry_after)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler never blocks shutdown
    allow_reuse_address = True

    def __init__(self, sink: "HttpSink"):
        self.sink = sink
        super().__init__(("127.0.0.1", 0), _Handler)


class HttpSink:
    def __init__(self, *, hang: bool = False, tls=None, replies: list[Reply] | None = None):
        self.hang = hang
        self._tls = tls
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[Request] = []
        self._replies: list[Reply] = list(replies) if replies else [Reply()]
        self._next_reply = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle

    def start(self) -> "HttpSink":
        self._server = _Server(self)
        if self._tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._tls.cert, self._tls.key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> "HttpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- configuration and observation

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the sink first"
        return self._server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        scheme = "https" if self._tls is not None else "http"
        return "%s://127.0.0.1:%d%s" % (scheme, self.port, path)

    def script(self, *replies: Reply) -> None:
        """Answers the next requests with `replies` in order; the last one then repeats."""
        with self._lock:
            self._replies = list(replies) or [Reply()]
            self._next_reply = 0

    def _record(self, request: Request) -> Reply:
        with self._cond:
            self._requests.append(request)
            reply = self._replies[min(self._next_reply, len(self._replies) - 1)]
            self._next_reply += 1
            self._cond.notify_all()
            return reply

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, n: int, timeout: float = 20) -> list[Request]:
        """Waits until at least `n` requests arrived; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out after %.1fs waiting for %d HTTP requests "
                                         "(got %d)" % (timeout, n, len(self._requests)))
                self._cond.wait(left)
            return list(self._requests)
