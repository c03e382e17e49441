"""The environment parity check: what a sandbox really offers, against the documented environment.

`PARITY_CODE` runs inside a sandbox (through the agent, as user code) and prints one JSON object;
`compare()` turns it into lines and a verdict. Differences are printed, not hidden: a patch version of Python
other than the documented 3.11.12 (the offline image has Debian's 3.11.2) is reported as a difference but
is not a failure; a missing library or tool, a network interface, or limits other than 5 GiB / 1 CPU are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

#: the documented environment (wire-contract §11)
DOCUMENTED_PYTHON = "3.11.12"
DOCUMENTED_MEMORY_BYTES = 5 * 1024**3
DOCUMENTED_CPUS = 1
#: distribution name -> import name
DOCUMENTED_LIBRARIES: dict[str, str] = {
    "pandas": "pandas",
    "numpy": "numpy",
    "scipy": "scipy",
    "scikit-learn": "sklearn",
    "statsmodels": "statsmodels",
    "matplotlib": "matplotlib",
    "seaborn": "seaborn",
    "pyarrow": "pyarrow",
    "openpyxl": "openpyxl",
    "xlsxwriter": "xlsxwriter",
    "xlrd": "xlrd",
    "pillow": "PIL",
    "python-pptx": "pptx",
    "python-docx": "docx",
    "pypdf": "pypdf",
    "pdfplumber": "pdfplumber",
    "pypdfium2": "pypdfium2",
    "pdf2image": "pdf2image",
    "pdfkit": "pdfkit",
    "tabula-py": "tabula",
    "reportlab": "reportlab",
    "pycairo": "cairo",
    "img2pdf": "img2pdf",
    "sympy": "sympy",
    "mpmath": "mpmath",
    "tqdm": "tqdm",
    "python-dateutil": "dateutil",
    "pytz": "pytz",
    "joblib": "joblib",
}
#: documented tool -> commands that provide it (any one suffices)
DOCUMENTED_TOOLS: dict[str, tuple[str, ...]] = {
    "unzip": ("unzip",),
    "unrar": ("unrar",),
    "7zip": ("7z", "7zz"),
    "bc": ("bc",),
    "rg": ("rg",),
    "fd": ("fd",),
    "sqlite": ("sqlite3",),
}

PARITY_CODE = (
    "LIBRARIES = "
    + json.dumps(DOCUMENTED_LIBRARIES)
    + "\nTOOLS = "
    + json.dumps(DOCUMENTED_TOOLS)
    + r"""
import importlib, importlib.metadata, json, os, platform, shutil, sys
out = {"python": platform.python_version(), "machine": platform.machine(), "libraries": {}, "tools": {}}
for dist, module in LIBRARIES.items():
    entry = {"module": module}
    try:
        importlib.import_module(module)
        entry["importable"] = True
    except Exception as e:
        entry["importable"] = False
        entry["error"] = f"{type(e).__name__}: {e}"[:300]
    try:
        entry["version"] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        entry["version"] = None
    out["libraries"][dist] = entry
for tool, commands in TOOLS.items():
    out["tools"][tool] = next((shutil.which(c) for c in commands if shutil.which(c)), None)
def read(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
    return None
mem = read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
out["memory_limit"] = int(mem) if mem and mem.isdigit() else None
quota = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us")
period = read("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us")
cpu_max = read("/sys/fs/cgroup/cpu.max")
if quota and period and int(quota) > 0:
    out["cpu_quota"] = int(quota) / int(period)
elif cpu_max and cpu_max.split()[0] != "max":
    q, p = cpu_max.split()
    out["cpu_quota"] = int(q) / int(p)
else:
    out["cpu_quota"] = None
out["os_cpu_count"] = os.cpu_count()
out["affinity_cpus"] = len(os.sched_getaffinity(0))
lines = open("/proc/net/dev").read().splitlines()[2:]
out["interfaces"] = sorted(l.split(":")[0].strip() for l in lines)
out["nameservers"] = [l.split()[1] for l in (read("/etc/resolv.conf") or "").splitlines()
                      if l.startswith("nameserver") and len(l.split()) > 1]
st = os.statvfs("/workspace")
out["workspace_bytes"] = st.f_blocks * st.f_frsize
print(json.dumps(out))
"""
)


class _Runs(Protocol):
    def run_python(self, code: str, *, timeout_s: float | None = None) -> Any: ...


@dataclass
class ParityReport:
    seen: dict[str, Any]
    #: (ok, text) per line, in print order
    lines: list[tuple[bool, str]] = field(default_factory=list)
    #: a hard difference: something documented is missing or the limits are not the documented ones
    failures: list[str] = field(default_factory=list)
    #: printed differences that are not failures (e.g. the Python patch version)
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def render(self) -> str:
        out = [("  ok   " if ok else "  DIFF ") + text for ok, text in self.lines]
        if self.differences or self.failures:
            out.append(f"{len(self.failures)} failure(s), {len(self.differences)} other difference(s):")
            out += [f"  - {d}" for d in self.failures + self.differences]
        else:
            out.append("the image matches the documented environment")
        return "\n".join(out)


def compare(seen: dict[str, Any], pins: dict[str, str] | None = None) -> ParityReport:
    """Judge what a sandbox saw (`PARITY_CODE`'s output) against the documented environment; `pins` are the
    lock file's versions (a library at another version is a difference)."""
    report = ParityReport(seen)

    def line(ok: bool, text: str, *, fail: str | None = None, diff: str | None = None) -> None:
        report.lines.append((ok, text))
        if fail:
            report.failures.append(fail)
        if diff:
            report.differences.append(diff)

    py = str(seen.get("python"))
    same_minor = py.split(".")[:2] == DOCUMENTED_PYTHON.split(".")[:2]
    if py == DOCUMENTED_PYTHON:
        line(True, f"python {py}")
    else:
        text = f"python {py} (documented {DOCUMENTED_PYTHON})"
        line(False, text, fail=None if same_minor else text, diff=text if same_minor else None)
    machine = seen.get("machine")
    arch_ok = machine == "x86_64"
    line(arch_ok, f"architecture {machine}", fail=None if arch_ok else f"architecture {machine}")
    for dist, entry in (seen.get("libraries") or {}).items():
        version = entry.get("version")
        if not entry.get("importable"):
            text = f"{dist}: import {entry.get('module')} failed: {entry.get('error')}"
            line(False, text, fail=f"{dist} missing")
            continue
        pinned = (pins or {}).get(dist)
        if pinned and version != pinned:
            text = f"{dist} {version} (lock file pins {pinned})"
            line(False, text, diff=text)
        else:
            line(True, f"{dist} {version}")
    for tool, path in (seen.get("tools") or {}).items():
        missing = None if path else f"tool {tool} missing"
        line(bool(path), f"tool {tool}: {path or 'not on PATH'}", fail=missing)
    mem = seen.get("memory_limit")
    text = f"memory limit seen {mem} bytes (documented {DOCUMENTED_MEMORY_BYTES})"
    line(mem == DOCUMENTED_MEMORY_BYTES, text, fail=None if mem == DOCUMENTED_MEMORY_BYTES else text)
    quota = seen.get("cpu_quota")
    quota_ok = quota is not None and abs(float(quota) - DOCUMENTED_CPUS) < 0.01
    text = f"CPU quota seen {quota} (documented {DOCUMENTED_CPUS})"
    line(quota_ok, text, fail=None if quota_ok else text)
    count, affinity = seen.get("os_cpu_count"), seen.get("affinity_cpus")
    text = f"CPU count seen: os.cpu_count() {count}, usable cores (nproc) {affinity}"
    if count == DOCUMENTED_CPUS and affinity == DOCUMENTED_CPUS:
        line(True, text)
    else:
        line(False, text, diff=text + f" (documented {DOCUMENTED_CPUS}; the quota still limits to 1 CPU)")
    ifaces = seen.get("interfaces")
    text = f"network interfaces {ifaces}, nameservers {seen.get('nameservers') or 'none'}"
    line(ifaces == ["lo"], text, fail=None if ifaces == ["lo"] else "network present: " + text)
    ws = seen.get("workspace_bytes") or 0
    ws_ok = abs(ws - DOCUMENTED_MEMORY_BYTES) <= DOCUMENTED_MEMORY_BYTES * 0.05
    text = f"workspace filesystem {ws} bytes (documented 5 GiB)"
    line(ws_ok, text, diff=None if ws_ok else text)
    return report


def run_parity(sandbox: _Runs, pins: dict[str, str] | None = None) -> ParityReport:
    """Run `PARITY_CODE` in `sandbox` and compare. Raises RuntimeError if it could not run."""
    result = sandbox.run_python(PARITY_CODE, timeout_s=180)
    for text in reversed(result.stdout.strip().splitlines()):
        try:
            seen = json.loads(text)
        except ValueError:
            continue
        if isinstance(seen, dict):
            return compare(seen, pins)
    raise RuntimeError(f"the parity check did not run (exit {result.return_code}): {result.stderr[-1000:]}")
