"""pytest plugin: options, markers and fixtures wiring pytest to `emulator.Emulator` (and nothing else).

Fixtures:
- `code_execution_emulator`: a running `Emulator`, reset after each test. A test marked
  `@pytest.mark.code_execution_emulator(**config)` gets its own emulator built with those settings.
- `anthropic_client`: the official `anthropic.Anthropic` client wired to it in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from emulator.cassettes.testing import add_record_mode_option, cassette_settings, unmatched_report

if TYPE_CHECKING:
    import anthropic

    from emulator.config import EmulatorConfig
    from emulator.service import Emulator

# The engine is imported when a fixture or hook first needs it: this module is loaded by every pytest
# session of every project that installed us (an entry point), most of which never start an emulator.
USAGE = pytest.StashKey["UsageLedger"]()
MARKER = "code_execution_emulator"
FAULTS_MARKER = "emulator_faults"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("code-execution-emulator")
    group.addoption(
        "--emulator-mode",
        default="emulate",
        choices=["emulate", "replay", "record"],
        help="emulate (default); replay or record each test's cassette (cassettes/<module>/<test>.yaml next "
        "to the test; --record-mode as pytest-recording's)",
    )
    group.addoption(
        "--emulator-upstream", default="https://api.anthropic.com", help="where record mode forwards requests"
    )
    add_record_mode_option(group, parser, pluginmanager)
    group.addoption("--emulator-backend", default="local", help="sandbox backend for the emulator fixture")
    group.addoption(
        "--emulator-isolation",
        default="auto",
        choices=["auto", "bwrap", "none"],
        help="local backend isolation",
    )
    group.addoption(
        "--emulator-fidelity", default="2026", help="wire fidelity profile: 2026, 2025, documented-2025"
    )


def pytest_configure(config: pytest.Config) -> None:
    from emulator.state.usage import UsageLedger

    config.stash[USAGE] = UsageLedger()
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): run this test against its own emulator built with these EmulatorConfig "
        "settings",
    )
    config.addinivalue_line(
        "markers",
        f"{FAULTS_MARKER}(*faults): arm these emulator.faults (tool errors, HTTP errors, stream faults) "
        "for the test",
    )


def _base_config(config: pytest.Config) -> EmulatorConfig:
    from emulator.config import EmulatorConfig

    return EmulatorConfig(
        backend=config.getoption("--emulator-backend"),
        isolation=config.getoption("--emulator-isolation"),
        fidelity=config.getoption("--emulator-fidelity"),
    )


@pytest.fixture(scope="session")
def _code_execution_emulator_session(pytestconfig: pytest.Config) -> Iterator[Emulator]:
    from emulator.service import Emulator

    with Emulator(_base_config(pytestconfig)) as emulator:
        yield emulator
        pytestconfig.stash[USAGE].absorb(emulator.usage_ledger)


def _arm_marked_faults(request: pytest.FixtureRequest, emulator: Emulator) -> None:
    for marker in request.node.iter_markers(FAULTS_MARKER):
        emulator.inject(*marker.args)


@pytest.fixture
def code_execution_emulator(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config
) -> Iterator[Emulator]:
    marker = request.node.get_closest_marker(MARKER)
    settings: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    mode = settings.get("mode") or pytestconfig.getoption("--emulator-mode")
    if mode != "emulate":
        settings = cassette_settings(request, settings, mode)
    if marker is not None or mode != "emulate":
        from emulator.service import Emulator

        with Emulator(_base_config(pytestconfig).with_overrides(**settings)) as emulator:
            _arm_marked_faults(request, emulator)
            yield emulator
            pytestconfig.stash[USAGE].absorb(emulator.usage_ledger)
        failure = unmatched_report(emulator.cassette_edge)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        return
    shared: Emulator = request.getfixturevalue("_code_execution_emulator_session")
    try:
        _arm_marked_faults(request, shared)
        yield shared
    finally:
        shared.reset()


#: the key under which a pytest-xdist worker hands its usage to the controller
WORKER_USAGE = "code_execution_emulator_usage"


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    ledger = session.config.stash.get(USAGE, None)
    if workeroutput is not None and ledger is not None:
        workeroutput[WORKER_USAGE] = ledger.to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller: add each worker's usage, so the summary line covers the whole run."""
    ledger = node.config.stash.get(USAGE, None)
    usage = getattr(node, "workeroutput", {}).get(WORKER_USAGE)
    if ledger is not None and usage:
        ledger.absorb_json(usage)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    ledger = config.stash.get(USAGE, None)
    if ledger is None or not ledger.per_container():
        return
    terminalreporter.write_line(f"code-execution-emulator: {ledger.summary().line()}")


@pytest.fixture
def anthropic_client(code_execution_emulator: Emulator) -> anthropic.Anthropic:
    return code_execution_emulator.anthropic_client()
