"""A loopback webhook receiver (Teams, Slack or any JSON webhook) for the alert tests.

It listens on 127.0.0.1 (plain HTTP, or HTTPS with the test CA's certificate), records
every POST (path, headers, parsed JSON) and answers 200 "1" like Slack, unless told
otherwise: ``answer_with(500, times=1)``, ``stall(seconds)``. A stalled request ends by
itself after the stall, or at once when the receiver stops, so nothing outlives a test.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes import tls
from tests.fakes.loopback import LoopbackServer

# A path shaped like a Slack incoming webhook's: the secret is in the URL.
SECRET_PATH = "/services/T000/B000/" + "s3cr3t-webhook-token-XYZ"
MAX_STALL = 30.0


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)

    @property
    def json(self):
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # The status line, headers and body leave in one send() when the handler returns.
    wbufsize = 64 * 1024

    def setup(self) -> None:
        self.server.receiver._accepted(self.request)
        super().setup()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        receiver = self.server.receiver
        receiver._record(ReceivedRequest(self.path, dict(self.headers.items()), body))
        stall = receiver._take_stall()
        if stall:
            receiver._stopping.wait(stall)
            return
        status, text = receiver._take_answer()
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # the path carries the secret
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: FakeWebhook


class FakeWebhook(LoopbackServer):
    def __init__(self, *, https: bool = False) -> None:
        super().__init__()
        self._https = https
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[ReceivedRequest] = []
        self._answers: list[tuple[int, str]] = []
        self._stall = 0.0
        self._stall_times: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeWebhook:
        server = _Server((self.host, 0), _Handler)
        server.receiver = self
        if self._https:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.server_cert().configure_cert(context)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-webhook", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The webhook's URL, secret path included."""
        scheme = "https" if self._https else "http"
        return f"{scheme}://{self.host}:{self.port}{SECRET_PATH}"

    # --- intent ------------------------------------------------------------------------
    def answer_with(self, status: int, text: str = "error", *, times: int = 1) -> None:
        """The next ``times`` requests get ``status``; later ones the usual 200."""
        with self._lock:
            self._answers += [(status, text)] * times

    def stall(self, seconds: float, *, times: int | None = None) -> None:
        """Read requests but answer none for ``seconds`` (all of them, or the next ``times``)."""
        with self._lock:
            self._stall, self._stall_times = min(seconds, MAX_STALL), times

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list:
        return [request.json for request in self.requests]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._answers.clear()
            self._stall, self._stall_times = 0.0, None

    # --- the handler's side ----------------------------------------------------------
    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_stall(self) -> float:
        with self._lock:
            if not self._stall:
                return 0.0
            if self._stall_times is not None:
                self._stall_times -= 1
                stall = self._stall
                if self._stall_times <= 0:
                    self._stall, self._stall_times = 0.0, None
                return stall
            return self._stall

    def _take_answer(self) -> tuple[int, str]:
        with self._lock:
            return self._answers.pop(0) if self._answers else (200, "1")
