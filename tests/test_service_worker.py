"""nasfer.service.worker's I/O loop (`Serving`), driven turn by turn in this process over real
sockets on 127.0.0.1, with a trivial WSGI app."""

from __future__ import annotations

import os
import socket
import time

from nasfer.service.config import ServeConfig
from nasfer.service.worker import Serving

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def ok_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def turn_until(serving: Serving, done, limit_s: float = 5.0) -> None:
    end = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < end, "the loop did not get there in time"
        serving.poll(0.05)


def read_answer(client: socket.socket, serving: Serving) -> bytes:
    """Turn the loop until `client` has a whole answer or the server closed the connection."""
    client.setblocking(False)
    out = b""

    def answered() -> bool:
        nonlocal out
        try:
            data = client.recv(65536)
        except BlockingIOError:
            return False
        out += data
        return not data or out.endswith(b"ok")

    turn_until(serving, answered)
    return out


def test_a_connection_accepted_in_the_turn_a_linger_ends_gets_its_answer():
    """Regression: a lingering connection whose time was up was closed while wasyncore built its
    poll set; accept() handed its fd to a connection arriving in the same turn, and the stale poll
    result (POLLNVAL) for the old socket closed the new one unanswered (RemoteDisconnected on
    /healthz under slow clients, about 1 request in 20,000)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    serving = Serving(ok_app, [listener], ServeConfig(), threads=1)
    (server,) = serving.servers
    address = listener.getsockname()
    fillers: list[int] = []
    try:
        old = socket.create_connection(address)
        old.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # HTTP/1.0: the server closes after answering
        assert read_answer(old, serving).startswith(b"HTTP/1.0 200")
        turn_until(serving, lambda: any(ch.linger_until for ch in server.active_channels.values()))
        (lingering,) = server.active_channels.values()
        # Fill every free fd below the lingering socket's, so the kernel (lowest free fd first)
        # gives the next accepted connection exactly that fd once it is freed.
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd > lingering._fileno:
                os.close(fd)
                break
            fillers.append(fd)
        lingering.linger_until = time.monotonic() - 1  # its linger is over ...
        server.next_channel_cleanup = 0  # ... and the next turn runs maintenance
        new = socket.create_connection(address)  # waiting in the accept queue for that same turn
        new.sendall(HEALTHZ)
        answer = read_answer(new, serving)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok"), answer
        assert lingering._fileno is None  # the finished linger was closed all the same
        old.close()
        new.close()
    finally:
        for fd in fillers:
            os.close(fd)
        serving.stop(0, lambda: None)
        listener.close()
