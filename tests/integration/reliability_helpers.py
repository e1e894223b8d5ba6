"""Helpers for test_reliability.py (crashmail's outbox under faults). Run with /usr/bin/python3.

  PortSmtpSink(port=0, delay=0.0)  a recording SMTP server on 127.0.0.1:PORT (a port chosen
                                   beforehand, so a server can come up where crashmail has
                                   been failing to connect); `delay` seconds per message
  listener_section(...)            an [eventlistener:x] section running crashmail, written
                                   here so that buffer_size can be left at supervisord's default
  spool_ids(spool_root, name, area) alert ids in a listener's pending/ or failed/
  crashmail_status(spool)          `crashmail --status --spool SPOOL`
  process_pid(sup, name)           a process's pid from supervisord's getProcessInfo
  event_latencies(sup, listener)   seconds from "event N sent to listener X" to "X: event was
                                   processed", per event, from supervisord's debug log
  mail_header(content, name)       a header of a raw message (bytes)
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import logging
import os
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass

from aiosmtpd.controller import Controller

import harness as h

logging.getLogger("mail.log").setLevel(logging.CRITICAL)


# --------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    received_at: float  # time.monotonic() when DATA completed

    def header(self, name: str) -> str | None:
        return mail_header(self.content, name)


class _Handler:
    def __init__(self, sink: "PortSmtpSink"):
        self._sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._sink._lock:
            self._sink.rcpts.append(address)
        reply = self._sink.rcpt_reply.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._sink.delay:
            await asyncio.sleep(self._sink.delay)  # a slow mail server
        with self._sink._lock:
            self._sink._messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos),
                                                     bytes(envelope.original_content),
                                                     time.monotonic()))
        return "250 2.0.0 accepted"


class _PortController(Controller):
    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]  # the port 0 resolved to
        super()._trigger_server()


class PortSmtpSink:
    """A plain SMTP server (aiosmtpd) on 127.0.0.1:`port` (0: the kernel chooses).

    `delay`: seconds each message's DATA takes to be accepted. `rcpt_reply`: {address: reply}
    to refuse recipients (e.g. "550 5.1.1 no such user")."""

    def __init__(self, port: int = 0, delay: float = 0.0, rcpt_reply: dict | None = None):
        self.delay = delay
        self.rcpt_reply = dict(rcpt_reply or {})
        self.rcpts: list[str] = []
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller = _PortController(_Handler(self), hostname="127.0.0.1", port=port,
                                           ready_timeout=30)
        self.port = port

    def start(self) -> "PortSmtpSink":
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller._thread is not None:
            self._controller.stop()

    def __enter__(self) -> "PortSmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return "smtp://127.0.0.1:%d" % self.port

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def wait_for_messages(self, n: int, timeout: float) -> list[ReceivedMail]:
        h.wait_until(lambda: len(self.messages) >= n, timeout, interval=0.05,
                     what="%d mail(s) at %s (have %d)" % (n, self.url, len(self.messages)))
        return self.messages


def mail_header(content: bytes, name: str) -> str | None:
    message = email.message_from_bytes(content, policy=email.policy.default)
    value = message.get(name)
    return None if value is None else str(value)


# --------------------------------------------------------------------------- supervisord


def listener_section(name: str, args, *, logdir: str, spool: str, priority: int = -1,
                     buffer_size: int | None = None,
                     events: str = "PROCESS_STATE_EXITED,PROCESS_STATE_FATAL",
                     **options) -> str:
    """An [eventlistener:NAME] section running crashmail `args` with `--spool SPOOL` added.
    buffer_size=None writes no buffer_size line (supervisord's default, 10). stderr goes to
    h.stderr_path(logdir, name) like the harness's sections."""
    argv = [h.CRASHMAIL, *[str(a) for a in args], "--spool", spool]
    command = " ".join(shlex.quote(a) for a in argv).replace("%", "%%")
    lines = [
        "[eventlistener:%s]" % name,
        "command=%s" % command,
        "events=%s" % events,
        "priority=%d" % priority,
        "autostart=true",
        "autorestart=true",
        "startsecs=0",
        "stderr_logfile=%s" % h.stderr_path(logdir, name).replace("%", "%%"),
        "stderr_logfile_maxbytes=0",
    ]
    if buffer_size is not None:
        lines.append("buffer_size=%d" % buffer_size)
    for key, value in options.items():
        lines.append("%s=%s" % (key, value))
    return "\n".join(lines) + "\n"


def process_pid(sup: "h.Supervisord", name: str) -> int:
    with sup.rpc() as proxy:
        return int(proxy.supervisor.getProcessInfo(name)["pid"])


_LOG_TIME = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) DEBG "


def _log_time(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def event_latencies(sup: "h.Supervisord", listener: str) -> list[tuple[int, float]]:
    """(serial, seconds) for each event supervisord sent to `listener` and saw answered, from
    the time stamps (ms) of supervisord's debug log. A listener holds one event at a time, so
    each "sent" pairs with the next "processed"."""
    sent = re.compile(_LOG_TIME + r"event (\d+) sent to listener %s$" % re.escape(listener))
    done = re.compile(_LOG_TIME + r"%s: event was processed$" % re.escape(listener))
    result = []
    pending: tuple[int, float] | None = None
    for line in sup.log().splitlines():
        m = sent.match(line)
        if m:
            pending = (int(m.group(2)), _log_time(m.group(1)))
            continue
        m = done.match(line)
        if m and pending is not None:
            result.append((pending[0], _log_time(m.group(1)) - pending[1]))
            pending = None
    return result


def unexpected_exits(sup: "h.Supervisord", exclude: str = "") -> list[str]:
    """Names in supervisord's "exited: NAME (exit status N; not expected)" lines."""
    names = re.findall(r"exited: (\S+) \(exit status \d+; not expected\)$", sup.log(), re.M)
    return [n for n in names if n != exclude]


# --------------------------------------------------------------------------- spool


def spool_ids(spool_root: str, listener: str, area: str) -> list[str]:
    """Alert ids in SPOOL_ROOT/LISTENER/AREA (pending or failed), sorted."""
    folder = os.path.join(spool_root, listener, area)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(n[:-len(".json")] for n in names if n.endswith(".json"))


def crashmail_status(spool: str, timeout: float = 15) -> subprocess.CompletedProcess:
    """`crashmail --status --spool SPOOL` (text output)."""
    return h.run_crashmail(["--status", "--spool", spool], timeout=timeout)
