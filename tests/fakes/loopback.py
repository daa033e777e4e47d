from __future__ import annotations

from typing import Self


class LoopbackServer:
    """A fake server on 127.0.0.1; as a context manager it starts, then stops at the block's end."""

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
