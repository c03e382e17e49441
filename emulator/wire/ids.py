"""Identifiers shaped like the real API's: `<prefix>_01` followed by 22 base58 characters."""

from __future__ import annotations

import os
import random
import secrets

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class IdFactory:
    """Makes ids; seeded for reproducible runs, otherwise from a generator seeded by the OS.

    Ids need to be unique, not secret: one generator per factory, reseeded in a forked child, is enough
    (a `secrets` draw per character cost a replayed turn more than finding its answer in the cassette).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seeded = seed is not None
        self._random = random.Random(seed) if seed is not None else random.Random(secrets.randbits(128))
        self._pid = os.getpid()

    def new(self, prefix: str) -> str:
        if self._seeded:
            return f"{prefix}_01" + "".join(self._random.choice(BASE58) for _ in range(22))
        if os.getpid() != self._pid:  # a forked child must not repeat its parent's ids
            self._random, self._pid = random.Random(secrets.randbits(128)), os.getpid()
        return f"{prefix}_01" + "".join(self._random.choices(BASE58, k=22))

    def message(self) -> str:
        return self.new("msg")

    def server_tool_use(self) -> str:
        return self.new("srvtoolu")

    def tool_use(self) -> str:
        return self.new("toolu")

    def container(self) -> str:
        return self.new("container")

    def file(self) -> str:
        return self.new("file")

    def request(self) -> str:
        return self.new("req")

    def hex16(self) -> str:
        if self._seeded:
            return f"{self._random.getrandbits(64):016x}"
        return secrets.token_hex(8)
