"""What the loopback fakes share: lifecycle, host, TCP_NODELAY and a simulated round trip.

Contracts:
- Every socket a fake accepts goes through ``_accepted(sock)``, which sets
  ``TCP_NODELAY`` and records the value read back (``nodelay_by_connection``):
  a reply written in several ``send()`` calls then never waits for the client's
  delayed ACK (Nagle), which would otherwise add ~40 ms per reply on loopback.
- ``simulate_round_trip(seconds)`` delays every server reply (an SMTP reply,
  all its lines at once; an HTTPS response) by ``seconds``; each delay applied
  is counted in ``delayed_replies``. The constructor's ``round_trip`` is the
  default, which ``reset()`` restores (0: no delay).
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Self


class LoopbackServer:
    """A fake server on 127.0.0.1; as a context manager it starts, then stops at the block's end."""

    def __init__(self, *, round_trip: float = 0.0) -> None:
        if round_trip < 0:
            raise ValueError("round_trip must be >= 0 seconds")
        self.default_round_trip = round_trip
        self._network_lock = threading.Lock()
        self._round_trip = round_trip
        self._delayed_replies = 0
        self._nodelay: list[bool] = []
        # Bumped by every reset(): a request that arrived before it belongs to an earlier test.
        self._generation = 0

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """Address to connect to (the test certificates also name ``localhost``)."""
        return "127.0.0.1"

    # simulated network

    def simulate_round_trip(self, seconds: float) -> None:
        """Delay every reply from now on by ``seconds`` (0 turns it off) until ``reset()``."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._network_lock:
            self._round_trip = seconds

    @property
    def round_trip(self) -> float:
        """Seconds each reply waits before it is written."""
        with self._network_lock:
            return self._round_trip

    @property
    def delayed_replies(self) -> int:
        """How many replies were delayed by a simulated round trip since the last ``reset()``."""
        with self._network_lock:
            return self._delayed_replies

    @property
    def nodelay_by_connection(self) -> list[bool]:
        """``TCP_NODELAY`` as read back from each accepted socket, oldest first."""
        with self._network_lock:
            return list(self._nodelay)

    def _network_generation(self) -> int:
        with self._network_lock:
            return self._generation

    def _reply_delay(self, generation: int | None = None) -> float:
        """Seconds the reply about to be written must wait (counted when not 0).

        ``generation``: ``_network_generation()`` when the request arrived. A request that was
        still being answered when ``reset()`` ran (a stalled one of an earlier test) is answered
        at once and not counted, so it never shows in a later test's ``delayed_replies``.
        """
        with self._network_lock:
            if generation is not None and generation != self._generation:
                return 0.0
            if self._round_trip:
                self._delayed_replies += 1
            return self._round_trip

    def _accepted(self, sock: Any) -> None:
        """Set ``TCP_NODELAY`` on an accepted socket (or asyncio's ``TransportSocket``)."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        value = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        with self._network_lock:
            self._nodelay.append(value)

    def _reset_network(self) -> None:
        with self._network_lock:
            self._round_trip = self.default_round_trip
            self._delayed_replies = 0
            self._nodelay.clear()
            self._generation += 1
