"""A UvicornWorker whose shutdown never drops a request it could still serve.

Why the stock worker loses requests (uvicorn 0.3x-0.5x, ``uvicorn.Server.shutdown``):

1. **Accepted but not yet read connections are closed as idle.** On shutdown
   (max-requests recycling or SIGTERM) uvicorn calls ``shutdown()`` on every
   connection, and the HTTP protocols close any connection whose ``cycle`` is
   ``None``. A connection the event loop has just accepted, whose request bytes are
   still in the kernel buffer or only partly parsed, has no cycle yet, so it is
   treated as an idle keep-alive connection and closed. Closing a socket with unread
   data makes Linux send RST: the client, which already sent its request, sees
   "connection reset". Under steady load a worker always holds a few such
   connections, which is the ~0.6% loss measured during max-requests recycling with
   32 clients on fresh connections. Gunicorn's own ``asgi`` worker waits for these
   connections instead, and loses none. The same close also hits kept-alive
   connections that look idle: a client sending its next request at that moment
   gets "server disconnected without a response".
2. **The listening socket dies with the kernel backlog in it.** On SIGTERM the
   master closes its copy of the listener and every worker closes its own; when the
   last copy goes, connections the kernel had already completed (and whose requests
   it had already buffered) but no worker had accepted are reset.
3. **Nothing bounds or reports the drain.** uvicorn_worker does not pass Gunicorn's
   graceful timeout to uvicorn, and uvicorn stops heart-beating to the master while
   draining, so a long drain is killed as a "WORKER TIMEOUT" during recycling.

What this worker does instead (the :class:`DrainingServer`):

- keeps the listener's open file description alive with a ``dup()`` while it stops
  the event loop's accept loop, and on a signalled shutdown accepts every connection
  still in the backlog before letting go of it, so anything that reached the kernel
  before the listener closed gets served, and later connections are refused;
- marks the server as draining: every request parsed from now on, including the
  ones already waiting in socket buffers, is answered with ``Connection: close`` and
  its connection closed after the response. A connection with nothing received is
  closed only once the keep-alive timeout has passed since draining began, exactly
  the rule that closes idle connections in normal operation, so draining adds no
  close-while-the-client-sends race of its own (HTTP/1.1 has no way to announce a
  close on an idle connection);
- waits for all of that within Gunicorn's ``graceful_timeout`` (then cancels what
  is left), notifying the master's heartbeat while it waits.

The protocol classes are uvicorn's (httptools, else h11) with a small mixin; the
hooks used (``cycle`` assignment, ``data_received``, ``shutdown``) are the ones every
uvicorn HTTP protocol has had since 0.1x. ``tests/app/test_runtime_recycling.py`` and
``bench/app_shutdown.py`` measure the result against the stock worker.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import logging
import signal
import socket
import sys
import termios
import time
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker as _StockUvicornWorker

logger = logging.getLogger("uvicorn.error")

# How often the drain loop re-checks connections.
DRAIN_POLL_SECONDS = 0.01


def unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes waiting in the kernel receive buffer of a transport's socket (FIONREAD)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        fd = sock.fileno()
        if fd < 0:
            return 0
        buf = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
    except OSError:
        return 0
    return buf[0]


class DrainingProtocolMixin:
    """Makes a uvicorn HTTP protocol close only when no request can be lost.

    A connection is *fresh* until its first request is parsed, *receiving* while a
    request is partly parsed, *in flight* while a response is pending and *idle*
    after a response on a kept-alive connection.
    """

    server_state: Any
    transport: asyncio.Transport
    _awaiting_request: bool = False
    _drain_cycle: Any = None

    @property
    def cycle(self) -> Any:
        return self._drain_cycle

    @cycle.setter
    def cycle(self, value: Any) -> None:
        # Every uvicorn protocol assigns self.cycle for each parsed request: the one
        # place to make requests answered while draining carry Connection: close.
        if value is not None:
            self._awaiting_request = False
            if getattr(self.server_state, "draining", False):
                value.keep_alive = False
        self._drain_cycle = value

    def data_received(self, data: bytes) -> None:
        cycle = self._drain_cycle
        if cycle is None or cycle.response_complete:
            self._awaiting_request = True  # cleared by the cycle setter once parsed
        super().data_received(data)  # type: ignore[misc]

    def drain_step(self, quiet_expired: bool = False) -> None:
        """Close this connection if, and only if, that cannot drop a request.

        Called once when shutdown starts (as uvicorn's ``shutdown()`` hook) and then
        on every drain poll. ``quiet_expired``: the keep-alive timeout has passed
        since draining began, so a connection that sent nothing may be closed.
        """
        if self.transport.is_closing():
            return
        cycle = self._drain_cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # finish this response, then close
            return
        if self._awaiting_request or unread_bytes(self.transport) > 0:
            return  # a request is arriving: it is answered with Connection: close
        if not quiet_expired:
            # Fresh (its request is almost certainly on the way) or kept alive (the
            # client may be sending right now): let it speak or time out.
            return
        super().shutdown()  # type: ignore[misc]  # quiet for a keep-alive timeout

    def shutdown(self) -> None:
        """uvicorn's graceful-shutdown hook, called for each open connection."""
        self.drain_step()


class H11DrainingProtocol(DrainingProtocolMixin, H11Protocol):
    """h11 protocol with lossless draining."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsDrainingProtocol(DrainingProtocolMixin, HttpToolsProtocol):
        """httptools protocol with lossless draining."""

    DEFAULT_PROTOCOL: type[asyncio.Protocol] = HttpToolsDrainingProtocol
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    DEFAULT_PROTOCOL = H11DrainingProtocol


class DrainingServer(Server):
    """uvicorn Server whose shutdown serves every request that reached it (module docstring)."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.server_state.draining = False
        self._listen_sockets: list[socket.socket] = []
        self.drained_backlog = 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._listen_sockets = list(sockets or [])
        await super().startup(sockets=sockets)

    def _new_protocol(self) -> asyncio.Protocol:
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )

    def _stop_listening(self, drain_backlog: bool) -> list[socket.socket]:
        """Stop accepting; with ``drain_backlog`` also take what the kernel already queued.

        Runs without awaiting, so nothing else touches the listener meanwhile.
        """
        spares = [s.dup() for s in self._listen_sockets] if drain_backlog else []
        for server in self.servers:
            server.close()
        accepted: list[socket.socket] = []
        for spare in spares:
            spare.setblocking(False)
            while True:
                try:
                    conn, _addr = spare.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                accepted.append(conn)
            spare.close()
        return accepted

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        logger.info("Shutting down")
        self.server_state.draining = True
        loop = asyncio.get_running_loop()
        # A signal means the listener is going away for good: take its backlog. When
        # only this worker is recycling, the master and the other workers keep the
        # queue alive and serve it.
        signalled = self.should_exit and not self.force_exit
        for conn in self._stop_listening(drain_backlog=signalled):
            conn.setblocking(False)
            await loop.connect_accepted_socket(self._new_protocol, conn)
            self.drained_backlog += 1
        if self.drained_backlog:
            logger.info("Accepted %d queued connection(s) before closing", self.drained_backlog)

        for connection in list(self.server_state.connections):
            connection.shutdown()

        timeout = self.config.timeout_graceful_shutdown
        try:
            await asyncio.wait_for(self._drain(), timeout=timeout)
        except TimeoutError:
            logger.error(
                "Graceful timeout (%ss) exceeded: cancelling %d request(s), closing %d "
                "connection(s)",
                timeout, len(self.server_state.tasks), len(self.server_state.connections),
            )
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, graceful timeout exceeded")
            for connection in list(self.server_state.connections):
                connection.transport.close()
        if self.force_exit:
            for connection in list(self.server_state.connections):
                connection.transport.close()
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _drain(self) -> None:
        """Wait until every connection and request is done, heart-beating the master."""
        idle_grace = max(float(self.config.timeout_keep_alive), 0.1)
        quiet_deadline = time.monotonic() + idle_grace
        last_notified = time.monotonic()
        if self.server_state.connections:
            count = len(self.server_state.connections)
            logger.info("Waiting for %d connection(s) to finish", count)
        while (self.server_state.connections or self.server_state.tasks) and not self.force_exit:
            now = time.monotonic()
            if now >= quiet_deadline:
                # Before this, nothing needs doing per connection: responses close
                # their connections themselves (keep_alive is off while draining).
                for connection in list(self.server_state.connections):
                    if isinstance(connection, DrainingProtocolMixin):
                        connection.drain_step(quiet_expired=True)
            notify = self.config.callback_notify
            if notify is not None and now - last_notified >= max(self.config.timeout_notify / 2, 1):
                last_notified = now
                await notify()
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()


def _force_exit(server: Server) -> None:
    server.should_exit = True
    server.force_exit = True


class UvicornWorker(_StockUvicornWorker):
    """``uvicorn_worker.UvicornWorker`` with lossless recycling and graceful shutdown.

    Also: no ASGI lifespan (Django does not implement it; uvicorn would log that on
    every start) and Gunicorn's graceful timeout bounds uvicorn's drain.
    """

    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": DEFAULT_PROTOCOL, "lifespan": "off"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A little under the master's own limit, so on SIGTERM the worker cancels and
        # logs what is left itself instead of being SIGKILLed mid-drain.
        graceful = float(self.cfg.graceful_timeout)
        self.config.timeout_graceful_shutdown = max(graceful - 1, graceful / 2)

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        # SIGQUIT is Gunicorn's quick shutdown: stop now instead of draining. (The
        # stock handler only flips a flag uvicorn never reads, so the master had to
        # SIGKILL the worker after its quick-shutdown grace.)
        asyncio.get_running_loop().add_signal_handler(signal.SIGQUIT, _force_exit, server)
        # Hand uvicorn the plain socket objects, not Gunicorn's wrappers: the event
        # loop then detaches them when it closes the fd instead of closing it twice.
        await server.serve(sockets=[getattr(s, "sock", s) for s in self.sockets])
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
