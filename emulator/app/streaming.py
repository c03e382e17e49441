"""Turning the engine's turn events into SSE bytes, advancing the (blocking) turn in a worker thread.

Stream faults fire here, where the response is written: stalls between events, an `error` event after N
events (the HTTP status is already 200), or a connection cut after N events.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.to_thread

from emulator.engine import ptc
from emulator.engine.faults import FaultContext
from emulator.engine.turn import BlockReady, EngineServices, TurnEvent, TurnFinished, TurnStarted
from emulator.errors import APIError
from emulator.wire import sse

log = logging.getLogger("emulator.app")


class DroppedConnection(Exception):
    """Raised inside the response body to make the server cut the connection (an injected fault)."""


def _next_event(events: Iterator[TurnEvent]) -> TurnEvent | None:
    return next(events, None)


async def _event_chunks(
    events: Iterator[TurnEvent], services: EngineServices, settings: sse.Fragmentation, blocking: bool
) -> AsyncIterator[bytes]:
    fragmenter = sse.Fragmenter(settings)
    fidelity = services.fidelity
    while True:
        # A step may run a command for seconds: then only a worker thread waits and the event loop stays
        # free. A turn with nothing to run is advanced inline (a thread hop costs more than the step).
        event = await anyio.to_thread.run_sync(_next_event, events) if blocking else _next_event(events)
        if event is None:
            return
        if isinstance(event, TurnStarted):
            yield sse.start_event(
                model=event.model,
                message_id=event.message_id,
                input_tokens=event.input_tokens,
                stop_details=fidelity.stop_details,
                inference_geo=fidelity.inference_geo,
            )
            yield sse.encode_ping()
        elif isinstance(event, BlockReady):
            for chunk in sse.block_events(event.index, event.block.to_wire(), fragmenter):
                yield chunk
        elif isinstance(event, TurnFinished) and event.prepopulated:
            for data in ptc.prepopulated_stream(event.message.to_wire()):
                yield sse.encode_event(data["type"], data)
        elif isinstance(event, TurnFinished):
            for chunk in sse.end_events(event.message.to_wire()):
                yield chunk


async def sse_stream(
    events: Iterator[TurnEvent],
    services: EngineServices,
    context: FaultContext,
    settings: sse.Fragmentation,
    *,
    blocking: bool = True,
) -> AsyncIterator[bytes]:
    faults = services.faults
    stall = faults.take("stall", context, where=lambda fault: fault.between_events)
    failure = faults.take("stream_error", context)
    drop = faults.take("stream_drop", context)
    sent = 0
    ping_due = False
    previous: str | None = None
    try:
        async for chunk in _event_chunks(events, services, settings, blocking):
            if stall is not None:
                await anyio.sleep(stall.delay_s)
            if failure is not None and sent >= failure.after_events:
                yield sse.error_event(
                    failure.error_type or "overloaded_error", failure.message or "Overloaded"
                )
                return
            if drop is not None and sent >= drop.after_events:
                raise DroppedConnection(f"injected: connection dropped after {sent} events")
            kind = sse.event_type(chunk)
            if ping_due and sse.ping_fits(previous, kind):
                yield sse.encode_ping()
                ping_due = False
            yield chunk
            if kind != "ping":
                previous = kind
            sent += 1
            if settings.ping_every and sent % settings.ping_every == 0:
                ping_due = True
    except (DroppedConnection, anyio.get_cancelled_exc_class()):
        raise
    except APIError as error:
        yield sse.error_event(error.error_type, error.message)
    except Exception:
        log.exception("internal error while streaming")
        yield sse.error_event("api_error", "Internal server error")
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
