"""The `code-execution-emulator` command: `serve` and `doctor`."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from emulator.config import FIDELITY_PROFILES, EmulatorConfig
from emulator.sandbox.base import IsolationReport


def _add_emulator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="local", help="sandbox backend (default: local)")
    parser.add_argument(
        "--isolation", default="auto", choices=["auto", "bwrap", "none"], help="local backend isolation"
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="keep containers' files here")
    parser.add_argument("--timeout", type=float, default=None, help="per tool call time limit in seconds")


def _add_cassette_options(parser: argparse.ArgumentParser) -> None:
    from emulator.cassettes.modes import DEFAULT_UPSTREAM, MODES, RECORD_MODES

    parser.add_argument(
        "--mode",
        default="emulate",
        choices=MODES,
        help="emulate (default), replay (answer from --cassette) or record (forward to --upstream, write it)",
    )
    parser.add_argument(
        "--cassette", type=Path, default=None, help="the vcrpy cassette (YAML) to replay or record"
    )
    parser.add_argument(
        "--record-mode",
        default=None,
        choices=RECORD_MODES,
        help="pytest-recording's record modes (default: none when replaying, all when recording)",
    )
    parser.add_argument("--upstream", default=DEFAULT_UPSTREAM, help="where record mode forwards requests")
    parser.add_argument(
        "--filter-header",
        action="append",
        default=[],
        metavar="NAME",
        help="also keep this header out of cassettes",
    )
    parser.add_argument(
        "--match-ignore",
        action="append",
        default=[],
        metavar="FIELD",
        help="request body field ignored when matching, dotted with * wildcards (e.g. metadata.user_id)",
    )
    parser.add_argument("--record-base-url", default=None, help="base URL written in recorded uris")


def _count(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    return parse


def _seconds(value: str) -> float:
    number = float(value)
    if not 0 <= number < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, at least 0, got {value}")
    return number


def _add_serve_behaviour_options(parser: argparse.ArgumentParser) -> None:
    """`EmulatorConfig` settings that non-Python clients can only set on the command line."""
    add = parser.add_argument
    add("--manual-clock", action="store_true", help="time moves only by POST /_emulator/clock")
    add("--pause-after-tool-calls", type=_count(0), metavar="N", help="pause_turn after N server tool calls")
    add("--stream-seed", type=int, metavar="N", help="seed of the streamed fragment sizes (default 0)")
    add("--stream-min-fragment", type=_count(1), metavar="N", help="smallest text/JSON delta (default 1)")
    add("--stream-max-fragment", type=_count(1), metavar="N", help="largest text/JSON delta (default 24)")
    add("--ping-every", type=_count(0), metavar="N", help="a ping every N events (default 0: one, at start)")
    add("--max-file-bytes", type=_count(1), metavar="N", help="largest Files API upload (default 500 MB)")
    add("--max-output-file-bytes", type=_count(1), metavar="N", help="largest file a tool call may output")
    add("--ptc-call-timeout", type=_seconds, metavar="SECONDS", help="programmatic tool call wait (240)")
    add("--batch-delay", type=_seconds, metavar="SECONDS", help="how long a batch stays in_progress (0)")


def _given(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {name: value for name, value in pairs if value is not None}


def _serve_behaviour(args: argparse.Namespace) -> dict[str, Any]:
    """The overrides for the options given (the others keep `EmulatorConfig`'s defaults)."""
    overrides = _given(
        [
            ("pause_after_tool_calls", args.pause_after_tool_calls),
            ("max_file_bytes", args.max_file_bytes),
            ("max_output_file_bytes", args.max_output_file_bytes),
            ("ptc_call_timeout_s", args.ptc_call_timeout),
            ("batch_delay_s", args.batch_delay),
        ]
    )
    streaming = _given(
        [
            ("seed", args.stream_seed),
            ("min_size", args.stream_min_fragment),
            ("max_size", args.stream_max_fragment),
            ("ping_every", args.ping_every),
        ]
    )
    if streaming:
        overrides["streaming"] = streaming
    if args.manual_clock:
        overrides["manual_clock"] = True
    return overrides


def _config(args: argparse.Namespace) -> EmulatorConfig:
    config = EmulatorConfig(backend=args.backend, isolation=args.isolation, state_dir=args.state_dir)
    if args.timeout is not None:
        config = config.with_overrides(limits={"timeout_s": args.timeout})
    return config


def print_report(report: IsolationReport, out: object = None) -> None:
    stream = out or sys.stdout
    print(f"backend: {report.backend}", file=stream)  # type: ignore[arg-type]
    for check in report.checks:
        mark = "yes" if check.in_effect else "NO "
        detail = f"  ({check.detail})" if check.detail else ""
        print(f"  [{mark}] {check.name}{detail}", file=stream)  # type: ignore[arg-type]
    for warning in report.warnings:
        print(f"warning: {warning}", file=stream)  # type: ignore[arg-type]


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    del signum, frame


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from emulator.service import Emulator, bind_socket

    config = _config(args).with_overrides(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        strict_betas=args.strict_betas,
        strict_models=args.strict_models,
        fidelity=args.fidelity,
        mode=args.mode,
        cassette=args.cassette,
        record_mode=args.record_mode,
        upstream=args.upstream,
        filter_headers=tuple(args.filter_header),
        match_ignore=tuple(args.match_ignore),
        record_base_url=args.record_base_url,
        **_serve_behaviour(args),
    )
    if config.mode != "emulate" and config.cassette is None:
        print(f"error: --mode {config.mode} needs --cassette PATH", file=sys.stderr)
        return 2
    with Emulator(config) as emulator:
        report = emulator.isolation()
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        sock = bind_socket(config.host, config.port)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"code-execution-emulator listening on http://{shown}:{port}", flush=True)
        print(f"  sandbox backend: {report.backend}; state: {emulator.state_dir}", flush=True)
        print("  point the SDK at it: anthropic.Anthropic(base_url=..., api_key='any')", flush=True)
        if emulator.cassette_edge is not None:
            edge = emulator.cassette_edge
            target = f", upstream {config.upstream}" if edge.record_mode != "none" else ""
            mode = f"{config.mode} mode: cassette {edge.path} (record mode {edge.record_mode}{target})"
            print(f"  {mode}", flush=True)
        server = uvicorn.Server(uvicorn.Config(emulator.app, log_level=args.log_level, lifespan="off"))
        # uvicorn stops on SIGINT/SIGTERM, then re-raises the signal to the handlers it found installed. Ours
        # swallow it so that `with` still closes the sandboxes and the process exits 0.
        previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
    print("code-execution-emulator stopped", flush=True)
    return 0


def doctor(args: argparse.Namespace) -> int:
    from emulator.sandbox import make_backend

    if getattr(args, "image", False):
        return doctor_image(args)
    config = _config(args)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="code-execution-emulator-doctor-") as scratch:
        backend = make_backend(
            config.backend,
            state_dir=config.state_dir or Path(scratch),
            limits=config.limits,
            isolation=config.isolation,
        )
        try:
            report = backend.report()
            print_report(report)
            box = backend.open("container_doctor")
            result = box.run_command("echo ok")
            healthy = result.return_code == 0 and result.stdout.strip() == "ok"
            print(f"sandbox round trip: {'ok' if healthy else 'FAILED'} ({result.duration_s * 1000:.1f} ms)")
            box.destroy()
        finally:
            backend.close()
    return 0 if healthy else 1


def doctor_image(args: argparse.Namespace) -> int:
    """`doctor --image`: the parity report, measured inside a sandbox of the Docker image."""
    import tempfile

    from emulator.image.parity import run_parity
    from emulator.image.recipe import locked_versions
    from emulator.sandbox import SandboxUnavailable, make_backend

    config = _config(args)
    with tempfile.TemporaryDirectory(prefix="code-execution-emulator-doctor-") as scratch:
        options = {"image": args.image_tag} if args.image_tag else {}
        backend = make_backend(
            "docker", state_dir=Path(scratch), limits=config.limits, pool_size=0, strict=False, **options
        )
        try:
            report = backend.report()
            print_report(report)
            box = backend.open("container_doctor_image")
            try:
                parity = run_parity(box, locked_versions())
            except (SandboxUnavailable, RuntimeError) as e:
                print(f"parity check: could not run: {e}")
                return 1
            finally:
                box.destroy()
        finally:
            backend.close()
    print(f"environment parity ({getattr(backend, 'image', '?')}):")
    print(parity.render())
    return 0 if parity.ok else 1


def image_build(args: argparse.Namespace) -> int:
    """`image build`: the sandbox image of the current recipe (skipped when its tag exists)."""
    from emulator.image import ImageBuildError, build_image

    try:
        outcome = build_image(source=args.source, force=args.force, mirror=args.mirror)
    except ImageBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # no engine, no docker-py: say so plainly
        print(f"error: cannot build the image: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    state = f"built ({outcome.variant}) in {outcome.seconds:.0f} s" if outcome.built else "already present"
    print(f"{outcome.tag}: {state}")
    return 0


def image_tag_command(args: argparse.Namespace) -> int:
    from emulator.image import image_tag

    print(image_tag())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="code-execution-emulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the fake Messages API on localhost")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    serve_parser.add_argument("--api-key", default=None, help="accept only this key (default: any key)")
    serve_parser.add_argument("--strict-betas", action="store_true", help="enforce documented beta headers")
    serve_parser.add_argument("--strict-models", action="store_true", help="404 for unknown model names")
    serve_parser.add_argument("--fidelity", default="2026", choices=sorted(FIDELITY_PROFILES))
    serve_parser.add_argument("--log-level", default="warning")
    _add_cassette_options(serve_parser)
    _add_emulator_options(serve_parser)
    _add_serve_behaviour_options(serve_parser)
    serve_parser.set_defaults(handler=serve)
    doctor_parser = commands.add_parser("doctor", help="report what the sandbox backend enforces here")
    _add_emulator_options(doctor_parser)
    doctor_parser.set_defaults(handler=doctor)
    doctor_parser.add_argument(
        "--image", action="store_true", help="environment parity report inside a Docker sandbox of the image"
    )
    doctor_parser.add_argument("--image-tag", default=None, help="image to check (default: current recipe)")
    image_parser = commands.add_parser("image", help="the Docker sandbox image")
    image_commands = image_parser.add_subparsers(dest="image_command", required=True)
    build = image_commands.add_parser("build", help="build the image of the current recipe (cached by hash)")
    build.add_argument(
        "--from",
        dest="source",
        default="auto",
        choices=["auto", "offline", "registry"],
        help="registry: the Dockerfile FROM python:3.11.12-slim; offline: debootstrap + PyPI wheels; "
        "auto: registry when its base image can be pulled (default)",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    build.add_argument("--mirror", default=None, help="Debian mirror for the offline build")
    build.set_defaults(handler=image_build)
    tag = image_commands.add_parser("tag", help="print the tag of the current recipe's image")
    tag.set_defaults(handler=image_tag_command)
    from emulator.cassettes import register as register_cassettes

    register_cassettes(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
