"""The gunicorn worker class of `nasfer serve`: waitress's I/O loop inside each gunicorn worker.

gunicorn's own workers read a request on the thread that then runs the app, so a client that sends
its headers or body a few bytes at a time holds an application thread for as long as it trickles
(four such clients stopped a 2 x 2 server). Waitress (https://docs.pylonsproject.org/projects/waitress)
reads and buffers every request, body included, in one non-blocking I/O loop and hands only whole
requests to its thread pool. This worker runs that loop in each process gunicorn forks, so the
arbiter (worker count, restarts, SIGHUP reload, graceful SIGTERM) stays gunicorn's.

On top of waitress it adds, via the extension points waitress exposes (`channel_class`,
`error_task_class`, `parser_class`, `add_task`, `maintenance`):

* errors raised by the server layer itself (malformed request 400, oversize body 413, request
  timeout 408, header block too large 431, unsupported transfer coding 501; counted in /metrics under
  route "unrouted") are the service's JSON
  `{"error": {"code", "message"}}`;
* a body over the limit is read and discarded (up to `DRAIN_LIMIT` bytes) before the 413 goes out,
  so clients that send the whole body before reading (urllib, requests, browsers) see the answer
  instead of a broken pipe; `Expect: 100-continue` clients get it at once;
* a request must arrive whole within `read_timeout` seconds (408), besides waitress's idle timeout;
* the probes, `GET /healthz` (liveness) and `GET /readyz` (readiness), are answered on the I/O loop
  itself, never queued behind inference: a probe gets its answer while every thread is busy, and
  /readyz counts the requests waiting in the thread pool's queue as they are at that moment (queued
  behind them, it would only run once they had drained, and then always say "ready").
"""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
import time
from typing import Any, Callable, Sequence

from gunicorn.workers.base import Worker
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import Error, RequestEntityTooLarge

from .config import ServeConfig

log = logging.getLogger("nasfer.service")

#: Paths answered on the I/O loop (liveness, readiness); everything else goes to the thread pool.
#: Their handlers must never block: they run on the thread that reads every connection.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
#: Most bytes of an oversize body read and discarded before its 413 is sent.
DRAIN_LIMIT = 64 * 1024 * 1024
#: After the server closes a connection it lingers this long (and at most LINGER_BYTES) reading
#: what the client still sends, so the kernel does not reset the connection over unread data and
#: throw away the answer before the client reads it (RFC 9112 section 9.6).
LINGER_S = 2.0
LINGER_BYTES = 1024 * 1024
#: On shutdown, how long connections accepted just before get to deliver their request.
STOP_SETTLE_S = 0.5
#: Largest request line plus headers (bytes); larger: 431.
MAX_HEADER_BYTES = 64 * 1024

ERROR_CODES = {400: "bad_request", 408: "request_timeout", 413: "payload_too_large",
               431: "headers_too_large", 500: "internal_error", 501: "not_implemented"}


class RequestTimeout(Error):
    code = 408
    reason = "Request Timeout"


def error_body(code: int, message: str) -> bytes:
    return json.dumps({"error": {"code": ERROR_CODES.get(code, "http_error"), "message": message}},
                      separators=(",", ":")).encode()


class JsonErrorTask(ErrorTask):
    """Waitress's error answer, as the service's JSON error document."""

    def execute(self) -> None:
        error = self.request.error
        limits: ServeConfig = self.channel.server.serve_config
        if isinstance(error, RequestEntityTooLarge):
            message = f"the request body is larger than the {limits.max_upload_mb:g} MB limit"
        elif isinstance(error, RequestTimeout):
            message = f"the request did not arrive within {limits.read_timeout} s"
        elif error.code == 431:
            message = f"the request line and headers are larger than {MAX_HEADER_BYTES // 1024} KB"
        elif error.code == 500:
            message = "internal server error; it has been logged"
        else:
            message = f"malformed HTTP request: {str(error.body)[:200]}"
        body = error_body(error.code, message)
        metrics = getattr(self.channel.server, "metrics", None)
        if metrics is not None:  # refused before the app saw it: counted in /metrics all the same
            command = getattr(self.request, "command", None)  # not parsed yet for a malformed request line
            method = command if command in ("GET", "POST", "HEAD", "OPTIONS") else "other"
            metrics.inc("nasfer_http_requests_total", {"route": "unrouted", "method": method, "status": error.code})
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class DrainingParser(HTTPRequestParser):
    """Reads and discards an oversize body (up to DRAIN_LIMIT) before the 413 is answered."""

    drain_left = 0
    chunk_tail = b""

    def received(self, data: bytes) -> int:
        if self.drain_left:
            return self._discard(data)
        consumed = super().received(data)
        if self.completed and self.error is not None and self.expect_continue:
            # The client waits for "100 Continue" before sending its body (curl does for large uploads):
            # answer the error instead, at once, so it never sends the body and reads the JSON.
            self.expect_continue = False
            return consumed
        if (self.completed and isinstance(self.error, RequestEntityTooLarge) and not self.expect_continue
                and self.content_length < DRAIN_LIMIT):
            # Content-Length: the rest of the body is known; chunked: until the last chunk or the cap.
            left = DRAIN_LIMIT - self.body_bytes_received if self.chunked else self.content_length
            if left > 0:
                self.drain_left = left
                self.completed = False
        return consumed

    def _discard(self, data: bytes) -> int:
        n = min(len(data), self.drain_left)
        self.drain_left -= n
        if self.chunked:
            self.chunk_tail = (self.chunk_tail + data[:n])[-16:]
            if self.chunk_tail.endswith(b"\r\n0\r\n\r\n"):
                self.drain_left = 0
        if self.drain_left == 0:
            self.completed = True
        return n


class Channel(HTTPChannel):
    """One client connection; remembers when its current request started (read deadline)."""

    error_task_class = JsonErrorTask
    parser_class = DrainingParser
    request_started: float | None = None
    linger_until: float | None = None
    linger_left = 0

    def handle_close(self) -> None:
        """First close: half-close (FIN after the answer) and linger reading; then really close."""
        if self.linger_until is None and self.connected and self.socket is not None:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                self.linger_until = time.monotonic() + LINGER_S
                self.linger_left = LINGER_BYTES
                self.will_close = self.close_when_flushed = False
                return
        super().handle_close()

    def readable(self) -> bool:
        return True if self.linger_until is not None else super().readable()

    def writable(self) -> bool:
        return False if self.linger_until is not None else super().writable()

    def handle_read(self) -> None:
        if self.linger_until is None:
            return super().handle_read()
        try:
            data = self.recv(65536)  # b"" at EOF: wasyncore calls handle_close, which closes
        except OSError:
            data = b""
        self.linger_left -= len(data)
        if data and (self.linger_left <= 0 or time.monotonic() > self.linger_until):
            super().handle_close()

    def received(self, data: bytes) -> bool:
        if self.request is None:
            self.request_started = time.monotonic()
        result = super().received(data)
        if self.request is None:
            self.request_started = None
        return result

    def time_out_request(self) -> bool:
        """Answer the request being received with 408 (called from the I/O loop); True if done."""
        with self.requests_lock:
            request = self.request
            if request is None or self.requests or self.will_close or self.close_when_flushed:
                return False
            if not request.headers_finished:
                request.parse_header(b"GET / HTTP/1.0\r\n")
            request.error = RequestTimeout("request not received in time")
            request.completed = True
            self.request = None
            self.request_started = None
            self.requests.append(request)
        self.server.add_task(self)
        return True


class Server(TcpWSGIServer):
    """A listening socket: whole requests to the thread pool, probes to the I/O loop."""

    channel_class = Channel
    serve_config: ServeConfig
    probes: collections.deque
    expired: collections.deque

    def add_task(self, task: Any) -> None:
        request = task.requests[0] if task.requests else None
        if (request is not None and request.error is None and request.command in ("GET", "HEAD")
                and request.path in PROBE_PATHS):
            self.probes.append(task)  # answered by Serving.poll on the loop thread
            self.pull_trigger()
        else:
            super().add_task(task)

    def maintenance(self, now: float) -> None:
        """Mark idle connections, time out slow requests, and queue finished lingers for closing.

        Runs inside wasyncore's poll-set construction (from `readable`), so it must not close a
        socket itself: the freed fd could be handed by `accept` to a new connection in the same loop
        turn, and the stale poll result for the old socket (POLLNVAL) would then close the new one
        before its request was answered. `Serving.poll` closes the queued channels after the turn.
        """
        super().maintenance(now)  # marks idle connections (channel_timeout) will_close
        deadline = time.monotonic() - self.serve_config.read_timeout
        for channel in list(self.active_channels.values()):
            if channel.linger_until is not None:
                if time.monotonic() > channel.linger_until:
                    self.expired.append(channel)
                continue
            started = getattr(channel, "request_started", None)
            if started is not None and started < deadline:
                channel.time_out_request()


class Serving:
    """Waitress servers on already-bound sockets, sharing one thread pool; driven by `poll`."""

    def __init__(self, app: Callable, sockets: Sequence, cfg: ServeConfig, threads: int):
        self.adj = adjustments(cfg, threads)
        self.map: dict = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(self.adj.threads)
        self.probes: collections.deque = collections.deque()
        self.expired: collections.deque = collections.deque()  # lingering channels whose time is up
        dispatcher = self.dispatcher

        def wsgi(environ: dict, start_response: Callable):
            # Requests waiting for a thread now (for /readyz, which runs on the loop: not among them).
            environ["nasfer.queued_requests"] = len(dispatcher.queue)
            return app(environ, start_response)

        self.servers = []
        for sock in sockets:
            server = Server(wsgi, map=self.map, _sock=sock, dispatcher=self.dispatcher, adj=self.adj,
                            bind_socket=False, sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))
            server.serve_config = cfg
            server.metrics = ((getattr(app, "extensions", None) or {}).get("nasfer") or {}).get("metrics")
            server.probes = self.probes
            server.expired = self.expired
            self.servers.append(server)

    def poll(self, timeout: float) -> None:
        """One turn of the I/O loop, then the probe requests it completed and the lingers it ended."""
        wasyncore.loop(timeout=timeout, map=self.map, use_poll=True, count=1)
        while self.probes:
            channel = self.probes.popleft()
            if channel.requests:
                channel.service()
        while self.expired:
            channel = self.expired.popleft()
            if self.map.get(channel._fileno) is channel:  # not closed meanwhile (EOF while lingering)
                HTTPChannel.handle_close(channel)

    def busy(self) -> bool:
        """Requests in the thread pool, or connections with a request (partly) read or an answer unsent."""
        return bool(self.dispatcher.active_count or self.dispatcher.queue or self.probes
                    or any(ch.requests or ch.request is not None or ch.total_outbufs_len
                           for s in self.servers for ch in list(s.active_channels.values())
                           if ch.linger_until is None))

    def stop(self, grace_s: float, heartbeat: Callable[[], None]) -> None:
        """Stop accepting, let requests in flight finish (at most `grace_s`), close everything.
        Connections accepted just before get STOP_SETTLE_S to deliver their request."""
        for server in self.servers:
            server.accepting = False
        start = time.monotonic()
        while time.monotonic() - start < grace_s and (time.monotonic() - start < STOP_SETTLE_S or self.busy()):
            heartbeat()
            self.poll(0.05)
        self.dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(self.map)


def adjustments(cfg: ServeConfig, threads: int) -> Adjustments:
    """Waitress settings for `cfg` (documented in docs/deploy.md)."""
    return Adjustments(
        threads=threads,
        ident="nasfer",
        channel_timeout=cfg.timeout,  # a connection silent this long (idle keep-alive or stalled) closes
        cleanup_interval=1,  # how often idle connections and read deadlines are checked
        max_request_body_size=cfg.max_upload_bytes + 1,  # larger: 413 (waitress counts >=)
        max_request_header_size=MAX_HEADER_BYTES,
        connection_limit=500,
        # X-Forwarded-Proto is trusted from a reverse proxy on this host only; X-Forwarded-For is
        # left to the app, which logs it for loopback peers.
        trusted_proxy="127.0.0.1",
        trusted_proxy_headers={"x-forwarded-proto"},
        clear_untrusted_proxy_headers=False,
        log_untrusted_proxy_headers=False,
        expose_tracebacks=False,
    )


class WaitressWorker(Worker):
    """gunicorn worker: waitress's loop on the sockets the arbiter shares; heartbeats from that loop.

    The ServeConfig comes from the gunicorn application object's `serve_config` attribute.
    """

    def run(self) -> None:
        cfg: ServeConfig = getattr(self.app, "serve_config", None) or ServeConfig()
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # saturation shows on /readyz
        serving = Serving(self.wsgi, [s.sock for s in self.sockets], cfg, threads=self.cfg.threads)
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            serving.poll(0.5)
        serving.stop(float(self.cfg.graceful_timeout), self.notify)
