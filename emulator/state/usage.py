"""Execution-time accounting per container, and the bill the published rule would give.

An estimate from the documented pricing (not a statement of what Anthropic charges): execution time is
billed per container session with a 5-minute minimum, the first 1,550 hours a month are free, then $0.05 per
container-hour.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

MINIMUM_SESSION_S = 300.0
FREE_HOURS_PER_MONTH = 1550.0
PRICE_PER_HOUR_USD = 0.05


@dataclass
class ContainerUsage:
    executed_s: float = 0.0
    calls: int = 0

    @property
    def billed_s(self) -> float:
        return max(self.executed_s, MINIMUM_SESSION_S)


@dataclass(frozen=True)
class UsageSummary:
    containers: int
    calls: int
    executed_s: float
    billed_hours: float
    free_hours: float
    billable_hours: float
    cost_usd: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{self.containers} container{'s' if self.containers != 1 else ''}, {self.calls} tool calls, "
            f"{self.executed_s:.2f} s executed, would bill {self.billed_hours:.3f} h "
            f"(${self.cost_usd:.2f} after {self.free_hours:g} free hours; estimate from the published rule)"
        )


class UsageLedger:
    """Thread-safe; cumulative for the emulator's life (a `reset()` does not clear it)."""

    def __init__(self) -> None:
        self._by_container: dict[str, ContainerUsage] = {}
        self._lock = threading.Lock()

    def record(self, container_id: str, seconds: float) -> None:
        with self._lock:
            usage = self._by_container.setdefault(container_id, ContainerUsage())
            usage.executed_s += seconds
            usage.calls += 1

    def touch(self, container_id: str) -> None:
        """A container that had a session without tool calls (e.g. files preloaded) is still billed."""
        with self._lock:
            self._by_container.setdefault(container_id, ContainerUsage())

    def absorb(self, other: UsageLedger) -> None:
        """Add another ledger's containers to this one (the pytest summary adds up every emulator)."""
        for container_id, usage in other.per_container().items():
            with self._lock:
                mine = self._by_container.setdefault(container_id, ContainerUsage())
                mine.executed_s += usage.executed_s
                mine.calls += usage.calls

    def to_json(self) -> dict[str, list[float]]:
        """{container id: [executed seconds, calls]}: what a pytest-xdist worker sends its controller."""
        return {key: [usage.executed_s, usage.calls] for key, usage in self.per_container().items()}

    def absorb_json(self, data: dict[str, list[float]]) -> None:
        with self._lock:
            for container_id, (executed_s, calls) in data.items():
                mine = self._by_container.setdefault(container_id, ContainerUsage())
                mine.executed_s += float(executed_s)
                mine.calls += int(calls)

    def per_container(self) -> dict[str, ContainerUsage]:
        with self._lock:
            return {
                key: ContainerUsage(value.executed_s, value.calls)
                for key, value in self._by_container.items()
            }

    def summary(self, free_hours: float = FREE_HOURS_PER_MONTH) -> UsageSummary:
        usages = list(self.per_container().values())
        billed_hours = sum(usage.billed_s for usage in usages) / 3600
        billable = max(0.0, billed_hours - free_hours)
        return UsageSummary(
            containers=len(usages),
            calls=sum(usage.calls for usage in usages),
            executed_s=sum(usage.executed_s for usage in usages),
            billed_hours=billed_hours,
            free_hours=free_hours,
            billable_hours=billable,
            cost_usd=billable * PRICE_PER_HOUR_USD,
        )
