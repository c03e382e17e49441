"""The state and services one emulator owns, shared by its HTTP app and its Python API."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from emulator.config import EmulatorConfig
from emulator.engine.batches import BatchProcessor
from emulator.engine.turn import EngineServices
from emulator.state.batches import BatchStore
from emulator.state.journal import Journal
from emulator.state.usage import UsageLedger


@dataclass
class Runtime:
    config: EmulatorConfig
    services: EngineServices
    journal: Journal
    batches: BatchStore
    batch_processor: BatchProcessor
    usage: UsageLedger
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _counter_lock: threading.Lock = field(default_factory=threading.Lock)

    def next_request_number(self) -> int:
        """1 for the first API request this emulator receives (admin calls do not count)."""
        with self._counter_lock:
            return next(self._counter)

    def reset(self) -> None:
        """Forget scripts, journal, containers and Files API files, and delete the containers' sandboxes."""
        services = self.services
        services.script.clear()
        services.faults.clear()
        services.threads.clear()
        self.journal.clear()
        self.batches.clear()
        with self._counter_lock:
            self._counter = itertools.count(1)
        for record in services.containers.all():
            services.backend.open(record.id).destroy()
        services.containers.clear()
        if services.files is not None:
            services.files.clear()
