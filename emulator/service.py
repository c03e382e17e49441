"""`Emulator`: one fake Messages API with its state, sandbox backend, HTTP app and clients.

Usable without pytest:

    with Emulator() as emulator:
        client = emulator.anthropic_client()          # in-process, no socket
        base_url = emulator.start_server()            # or a real HTTP server on 127.0.0.1
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx2
import uvicorn

from emulator.app import build_app
from emulator.app.inprocess import InProcessTransport
from emulator.config import EmulatorConfig
from emulator.engine.batches import BatchProcessor
from emulator.engine.catalog import default_catalog
from emulator.engine.container_files import OutputCollector
from emulator.engine.faults import Fault, require_fidelity
from emulator.engine.metering import MeteredBackend
from emulator.engine.ptc import PtcState
from emulator.engine.turn import EngineServices
from emulator.model.script import Script
from emulator.model.steps import Step
from emulator.runtime import Runtime
from emulator.sandbox import make_backend
from emulator.sandbox.base import IsolationReport
from emulator.state.batches import BatchStore
from emulator.state.clock import Clock, ManualClock, SystemClock
from emulator.state.containers import ContainerStore
from emulator.state.files import FileStore
from emulator.state.journal import Journal, JournalEntry
from emulator.state.persistence import Database
from emulator.state.usage import UsageLedger, UsageSummary
from emulator.wire.ids import IdFactory
from emulator.wire.validation import validate_request

if TYPE_CHECKING:
    import anthropic

    from emulator.cassettes.edge import CassetteEdge

DUMMY_API_KEY = "sk-ant-emulator-test-key"


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket's proto says TCP, and with Nagle on every response costs a ~40 ms delayed-ACK wait.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _ServerThread:
    """uvicorn on a socket we bound ourselves (so port 0 is known before the first request)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.socket = bind_socket(host, port)
        bound_host, bound_port = self.socket.getsockname()[:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown_host}:{bound_port}"
        # log_config=None: an embedded server must not dictConfig its host process's logging (uvicorn's
        # default config drops the handlers a test or an application put on the "uvicorn.*" loggers)
        config = uvicorn.Config(app, log_level="warning", log_config=None, lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="emulator-http", daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the emulator's HTTP server failed to start")
            self.thread.join(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


class Emulator:
    """A fake Messages API endpoint with real execution. Close it (or use `with`) to stop everything."""

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        self.config = (config or EmulatorConfig()).with_overrides(**overrides)
        #: in `replay` and `record` modes, what answers `/v1/*` (vcrpy cassette, upstream forwarding); built
        #: first so that a bad cassette fails before anything else is set up
        self.cassette_edge: CassetteEdge | None = None
        if self.config.mode != "emulate":
            from emulator.cassettes.edge import CassetteEdge, EdgeSettings

            self.cassette_edge = CassetteEdge(EdgeSettings.from_config(self.config))
        self._owned_state_dir: Path | None = None
        state_dir = self.config.state_dir
        if state_dir is None:
            state_dir = Path(tempfile.mkdtemp(prefix="code-execution-emulator-"))
            self._owned_state_dir = state_dir
        self.state_dir = state_dir
        self.clock: Clock = ManualClock() if self.config.manual_clock else SystemClock()
        self.script = Script()
        self.usage_ledger = UsageLedger()
        backend = MeteredBackend(
            make_backend(
                self.config.backend,
                state_dir=state_dir,
                limits=self.config.limits,
                isolation=self.config.isolation,
            ),
            self.usage_ledger,
        )
        ids = IdFactory(self.config.id_seed)
        # Files and containers are recorded in SQLite in the state directory, so `serve --state-dir` keeps
        # them across restarts (container files are kept by the sandbox backend in the same directory).
        self.database = Database.in_state_dir(state_dir)
        #: the Files API store (uploads and the files tool calls write into `$OUTPUT_DIR`)
        self.files = FileStore(
            state_dir / "files",
            self.database,
            self.clock,
            ids.file,
            max_file_bytes=self.config.max_file_bytes,
            durable=self._owned_state_dir is None,
        )
        services = EngineServices(
            containers=ContainerStore(self.clock, self.database),
            backend=backend,
            ids=ids,
            clock=self.clock,
            script=self.script,
            catalog=default_catalog(),
            strict_models=self.config.strict_models,
            strict_betas=self.config.strict_betas,
            fidelity=self.config.fidelity_settings,
            pause_after_tool_calls=self.config.pause_after_tool_calls,
            files=self.files,
            output_sink=OutputCollector(self.files, self.config.max_output_file_bytes),
            ptc=PtcState(call_timeout_s=self.config.ptc_call_timeout_s),
        )
        batches = BatchStore()
        self.runtime = Runtime(
            config=self.config,
            services=services,
            journal=Journal(),
            batches=batches,
            usage=self.usage_ledger,
            batch_processor=BatchProcessor(services, batches, validate_request, self.config.batch_delay_s),
        )
        edge = self.cassette_edge.handle if self.cassette_edge is not None else None
        self.app = build_app(self.runtime, edge)
        self._server: _ServerThread | None = None
        self._transports: list[InProcessTransport] = []
        self._closed = False

    # --- scripting and inspection --------------------------------------------------------------------------

    def add_turn(self, *steps: Step) -> None:
        """Queue one assistant turn; the next Messages request answers with these steps."""
        self.script.add_turn(steps)

    def add_turns(self, turns: Iterable[Iterable[Step]]) -> None:
        for turn in turns:
            self.script.add_turn(turn)

    @property
    def requests(self) -> list[JournalEntry]:
        """Every request received so far, oldest first (secrets redacted)."""
        return self.runtime.journal.entries()

    def inject(self, *faults: Fault) -> None:
        """Arm faults (see `emulator.faults`): tool error codes, HTTP errors, stream failures, stop
        reasons."""
        for fault in faults:
            require_fidelity(fault, self.config.fidelity_settings.documented_2025_codes)
        for fault in faults:
            self.runtime.services.faults.add(fault)

    @property
    def faults(self) -> list[Fault]:
        """The faults still armed."""
        return self.runtime.services.faults.armed()

    def reset(self) -> None:
        """Forget scripts, the journal, containers (their sandboxes are deleted) and Files API files; in
        replay and record modes, rewind the cassette (every interaction can be played again)."""
        self.runtime.reset()
        if self.cassette_edge is not None:
            self.cassette_edge.rewind()

    def usage(self) -> UsageSummary:
        """Measured sandbox time and what the published billing rule would charge (an estimate)."""
        return self.usage_ledger.summary()

    def isolation(self) -> IsolationReport:
        return self.runtime.services.backend.report()

    # --- serving -------------------------------------------------------------------------------------------

    def start_server(self) -> str:
        """Serve over real HTTP on the configured host and port (0 picks a free one); returns the base URL."""
        if self._server is None:
            self._server = _ServerThread(self.app, self.config.host, self.config.port)
            self._server.start()
        return self._server.base_url

    @property
    def base_url(self) -> str | None:
        return self._server.base_url if self._server else None

    def transport(self) -> InProcessTransport:
        transport = InProcessTransport(self.app)
        self._transports.append(transport)
        return transport

    def http_client(self, **kwargs: Any) -> httpx2.Client:
        """An httpx2 client that reaches this emulator in-process (base URL `http://emulator`)."""
        kwargs.setdefault("base_url", "http://emulator")
        return httpx2.Client(transport=self.transport(), **kwargs)

    def anthropic_client(self, *, in_process: bool = True, **kwargs: Any) -> anthropic.Anthropic:
        """The official SDK's client wired to this emulator (in-process by default, else over HTTP)."""
        import anthropic

        kwargs.setdefault("api_key", self.config.api_key or DUMMY_API_KEY)
        kwargs.setdefault("max_retries", 0)
        if in_process:
            kwargs.setdefault("base_url", "http://emulator")
            kwargs.setdefault("http_client", httpx2.Client(transport=self.transport()))
        else:
            kwargs.setdefault("base_url", self.start_server())
        return anthropic.Anthropic(**kwargs)

    # --- lifecycle -----------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.stop()
        if self.cassette_edge is not None:
            self.cassette_edge.close()
        self.runtime.batch_processor.close()
        for transport in self._transports:
            transport.close()
        self.runtime.services.backend.close()
        self.database.close()
        if self._owned_state_dir is not None:
            shutil.rmtree(self._owned_state_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
