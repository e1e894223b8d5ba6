"""Real SMTP servers on 127.0.0.1 for crashmail's integration tests (aiosmtpd, Debian's
python3-aiosmtpd; run with /usr/bin/python3).

    certs = Certificates(tmpdir)          # a private CA, a server certificate it signed
                                          # (SAN IP:127.0.0.1), and an untrusted self-signed one
    with SmtpSink(starttls=certs.server, users={"ops": "s3cret"}) as sink:
        ... run crashmail --smtp sink.url ...
        msg = sink.wait_for_messages(1)[0]
        msg.mail_from, msg.rcpt_tos, msg.content (bytes as received), msg.tls, msg.login

Kinds of server:
  SmtpSink()                                   plain SMTP, no TLS, no AUTH
  SmtpSink(starttls=pair)                      offers STARTTLS (require_starttls=True: demands it)
  SmtpSink(starttls=pair, users={...})         STARTTLS + AUTH required (AUTH only over TLS)
  SmtpSink(users={...}, auth_require_tls=False) AUTH offered in clear, no STARTTLS: a trap for a
                                               client that would send its password unencrypted
  SmtpSink(implicit_tls=pair)                  smtps: TLS from the first byte
  SmtpSink(rcpt_reply={addr: "550 ..."}, data_reply="451 ...")  rejects on demand
  SilentServer()                               accepts TCP connections and never says a word
  unused_port()                                a port on 127.0.0.1 where nothing listens

Every connection's client lines are recorded (sink.commands: CommandLine(text, tls)), outside
the DATA part, so a test can assert that no AUTH command was ever sent. The raw bytes each
connection received are in sink.raw_sessions (to check dot-stuffing on the wire).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

logging.getLogger("mail.log").setLevel(logging.CRITICAL)

OPENSSL = "/usr/bin/openssl"


# --------------------------------------------------------------------------- certificates


@dataclass
class CertPair:
    cert: str  # PEM certificate path
    key: str   # PEM private key path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


class Certificates:
    """Generates, with the openssl CLI, in `dir`:
      ca.pem              a private CA (what --cacert trusts)
      server (CertPair)   server.pem/server.key signed by that CA, SAN DNS:localhost,IP:127.0.0.1
      untrusted (CertPair) rogue.pem/rogue.key, self-signed, same SAN, trusted by nobody
    """

    def __init__(self, dir: str):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.ca = self._path("ca.pem")
        ca_key = self._path("ca.key")
        san = "subjectAltName=DNS:localhost,IP:127.0.0.1"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca, "-days", "2",
                      "-subj", "/CN=crashmail test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.server = CertPair(self._path("server.pem"), self._path("server.key"))
        csr = self._path("server.csr")
        self._openssl("req", *ec, "-keyout", self.server.key, "-out", csr,
                      "-subj", "/CN=localhost")
        ext = self._path("server.ext")
        with open(ext, "w") as f:
            f.write(san + "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key,
                      "-CAcreateserial", "-out", self.server.cert, "-days", "2",
                      "-extfile", ext)
        self.untrusted = CertPair(self._path("rogue.pem"), self._path("rogue.key"))
        self._openssl("req", "-x509", *ec, "-keyout", self.untrusted.key,
                      "-out", self.untrusted.cert, "-days", "2", "-subj", "/CN=localhost",
                      "-addext", san)

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @staticmethod
    def _openssl(*args: str) -> None:
        done = subprocess.run([OPENSSL, *args], capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], done.stderr.decode()))


# --------------------------------------------------------------------------- recording


@dataclass
class Message:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes   # DATA as received, dot-unstuffed, CRLF line endings kept
    tls: bool        # the transaction ran over TLS (STARTTLS or implicit)
    login: str | None  # the authenticated user, None when not authenticated
    helo: str | None   # the EHLO/HELO name the client gave


@dataclass
class CommandLine:
    text: str  # one client line outside DATA, e.g. "EHLO host", "AUTH PLAIN", "STARTTLS"
    tls: bool  # received over TLS


@dataclass
class AuthAttempt:
    mechanism: str
    login: str
    success: bool
    tls: bool


class _Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        self.commands: list[CommandLine] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.raw_sessions: list[bytearray] = []
        self.connections = 0


def _is_tls(transport) -> bool:
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, recording each client line (outside DATA) and the raw bytes."""

    def __init__(self, handler, recorder: _Recorder, **kwargs):
        super().__init__(handler, **kwargs)
        self._recorder = recorder
        self._raw = bytearray()
        self._pending = b""
        self._in_data = False
        with recorder.lock:
            recorder.raw_sessions.append(self._raw)
            recorder.connections += 1

    def data_received(self, data: bytes) -> None:
        tls = _is_tls(self.transport)
        with self._recorder.lock:
            self._raw.extend(data)
            self._pending += data
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                line = line.rstrip(b"\r")
                if self._in_data:
                    if line == b".":
                        self._in_data = False
                    continue
                text = line.decode("utf-8", errors="replace")
                self._recorder.commands.append(CommandLine(text, tls))
                if text.upper() == "DATA":
                    self._in_data = True
        super().data_received(data)


class _Handler:
    def __init__(self, recorder: _Recorder, rcpt_reply: dict, data_reply: str | None):
        self._recorder = recorder
        self._rcpt_reply = rcpt_reply
        self._data_reply = data_reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self._rcpt_reply.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._data_reply:
            return self._data_reply
        login = session.login_data
        if isinstance(login, bytes):
            login = login.decode("utf-8", errors="replace")
        with self._recorder.lock:
            self._recorder.messages.append(Message(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(envelope.original_content),
                tls=_is_tls(server.transport),
                login=login if session.authenticated else None,
                helo=session.host_name,
            ))
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    """Controller on an ephemeral port (port=0), building recording SMTP sessions."""

    def __init__(self, handler, recorder: _Recorder, **kwargs):
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)
        self._recorder = recorder

    def factory(self):
        with warnings.catch_warnings():
            # "Requiring AUTH while not requiring TLS": deliberate in the tests that use it.
            warnings.simplefilter("ignore", UserWarning)
            return _RecordingSMTP(self.handler, self._recorder, **self.SMTP_kwargs)

    def _trigger_server(self):
        # The server is bound by now: learn the port the kernel chose.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


# --------------------------------------------------------------------------- servers


class SmtpSink:
    """A real SMTP server on 127.0.0.1 (see the module docstring). start()/stop() or `with`."""

    def __init__(self, *, starttls: CertPair | None = None, require_starttls: bool = False,
                 implicit_tls: CertPair | None = None, users: dict | None = None,
                 auth_require_tls: bool = True, rcpt_reply: dict | None = None,
                 data_reply: str | None = None, hostname: str = "sink.test"):
        self.recorder = _Recorder()
        self.users = dict(users or {})
        kwargs = dict(server_hostname=hostname, ready_timeout=30)
        if starttls is not None:
            kwargs["tls_context"] = starttls.server_context()
            kwargs["require_starttls"] = require_starttls
        if implicit_tls is not None:
            kwargs["ssl_context"] = implicit_tls.server_context()
        if self.users:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # aiosmtpd only knows STARTTLS as TLS: with implicit TLS it would never offer AUTH.
            kwargs["auth_require_tls"] = auth_require_tls and implicit_tls is None
        self.scheme = "smtps" if implicit_tls is not None else "smtp"
        self._controller = _Controller(_Handler(self.recorder, dict(rcpt_reply or {}),
                                                data_reply),
                                       self.recorder, **kwargs)
        self.port = 0

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = False
        login = ""
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", errors="replace")
            password = auth_data.password.decode("utf-8", errors="replace")
            ok = self.users.get(login) == password
        with self.recorder.lock:
            self.recorder.auth_attempts.append(
                AuthAttempt(mechanism, login, ok, _is_tls(server.transport)))
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    # ----- lifecycle

    def start(self) -> "SmtpSink":
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller._thread is not None:
            self._controller.stop()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    # ----- observing (copies, safe while the server runs)

    @property
    def messages(self) -> list[Message]:
        with self.recorder.lock:
            return list(self.recorder.messages)

    @property
    def commands(self) -> list[CommandLine]:
        with self.recorder.lock:
            return list(self.recorder.commands)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        with self.recorder.lock:
            return list(self.recorder.auth_attempts)

    @property
    def raw_sessions(self) -> list[bytes]:
        with self.recorder.lock:
            return [bytes(r) for r in self.recorder.raw_sessions]

    def command_verbs(self) -> list[str]:
        """The upper-cased first word of every recorded client line."""
        return [c.text.split(" ", 1)[0].upper() for c in self.commands if c.text]

    def wait_for_messages(self, n: int, timeout: float = 20) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if len(messages) >= n:
                return messages
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %d message(s); got %d; "
                                     "commands: %r" % (timeout, n, len(messages),
                                                       [c.text for c in self.commands]))
            time.sleep(0.05)


class SilentServer:
    """Listens on 127.0.0.1, accepts every connection and never sends a byte (until stop())."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.url = "smtp://127.0.0.1:%d" % self.port
        self.accepted = 0
        self._clients: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._clients.append(client)  # held open, never written to
            self.accepted += 1

    def start(self) -> "SilentServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in self._clients:
            c.close()
        self._sock.close()

    def __enter__(self) -> "SilentServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound briefly, then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
