"""Identifiers shaped like the real API's: `<prefix>_01` followed by 22 base58 characters."""

from __future__ import annotations

import random
import secrets

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class IdFactory:
    """Makes ids; seeded for reproducible runs, otherwise drawn from `secrets`."""

    def __init__(self, seed: int | None = None) -> None:
        self._random: random.Random | None = random.Random(seed) if seed is not None else None

    def _choice(self) -> str:
        if self._random is not None:
            return self._random.choice(BASE58)
        return secrets.choice(BASE58)

    def new(self, prefix: str) -> str:
        return f"{prefix}_01" + "".join(self._choice() for _ in range(22))

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
        if self._random is not None:
            return f"{self._random.getrandbits(64):016x}"
        return secrets.token_hex(8)
