"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1 for
crashmail's tests.

    require(ALERTMANAGER)                      # from harness: skip when not installed
    with Alertmanager(tmpdir()) as am:         # started and ready (GET /-/ready answers 200)
        ... run crashmail --alertmanager am.url ...
        alerts = am.wait_for_alerts(lambda a: a["labels"].get("process") == "crashy")
        alerts[0]["labels"], alerts[0]["annotations"], alerts[0]["status"]["state"]

Clustering is off (--cluster.listen-address= empty), so it listens on one loopback port only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"

_CONFIG = """route:
  receiver: sink
  group_wait: 1h
receivers:
  - name: sink
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Alertmanager:
    def __init__(self, dir: str, binary: str = ALERTMANAGER):
        self.dir = dir
        self.binary = binary
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(dir, "alertmanager.log")

    @property
    def url(self) -> str:
        """The base URL, as a user gives it to --alertmanager."""
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout: float = 30) -> "Alertmanager":
        os.makedirs(self.dir, exist_ok=True)
        config = os.path.join(self.dir, "am.yml")
        with open(config, "w") as f:
            f.write(_CONFIG)
        last_error = ""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = _free_port()
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    [self.binary, "--config.file=" + config,
                     "--storage.path=" + os.path.join(self.dir, "data"),
                     "--web.listen-address=127.0.0.1:%d" % self.port,
                     "--cluster.listen-address=", "--log.level=warn"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            finally:
                log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_error = "exited with %s: %s" % (self.proc.returncode, self.log()[-2000:])
                    break
                if self._ready():
                    return self
                time.sleep(0.1)
            else:
                last_error = "not ready after %ss: %s" % (timeout, self.log()[-2000:])
            self.stop()
        raise AssertionError("alertmanager did not start: " + last_error)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def __enter__(self) -> "Alertmanager":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # ----- API v2

    def alerts(self, active_only: bool = True) -> list[dict]:
        """GET /api/v2/alerts (active, unsilenced, uninhibited ones by default)."""
        query = "" if not active_only else "?active=true&silenced=false&inhibited=false"
        with urllib.request.urlopen(self.url + "/api/v2/alerts" + query, timeout=5) as response:
            return json.loads(response.read().decode("utf-8"))

    def post_alerts(self, alerts: list[dict]) -> int:
        """POST /api/v2/alerts directly (to check the server, not crashmail); returns status."""
        request = urllib.request.Request(self.url + "/api/v2/alerts",
                                         data=json.dumps(alerts).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status

    def wait_for_alerts(self, predicate=lambda alert: True, count: int = 1,
                        timeout: float = 20) -> list[dict]:
        """Waits until at least `count` active alerts satisfy `predicate`; returns them."""
        deadline = time.monotonic() + timeout
        found: list[dict] = []
        while True:
            found = [a for a in self.alerts() if predicate(a)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %d alerts; have %s"
                                     % (timeout, count, json.dumps(self.alerts())))
            time.sleep(0.1)
