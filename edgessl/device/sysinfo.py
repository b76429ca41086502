"""What the board is: OS, CPU, core count, Python, the runtime's version, and the process's peak memory."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU model as the OS reports it (Linux /proc/cpuinfo, macOS sysctl), else the platform's guess."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
                return value.strip()
    if sys.platform == "darwin":
        import subprocess

        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def peak_memory_mb() -> float | None:
    """Peak resident memory of this process in MB (ru_maxrss: KB on Linux, bytes on macOS); None on Windows."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def describe(runtime_package: str) -> dict[str, Any]:
    """The device's facts for the table's header and device_check.json."""
    return {"system": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
            "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "runtime": runtime_package, "runtime_version": package_version(runtime_package),
            "numpy": package_version("numpy"), "hostname": platform.node()}
