"""Packaging: pyproject/setup.py checks (fast) and a wheel installed into a fresh venv (slow).

The slow test is what `make test-wheel` (and CI) runs: `python -m build --wheel` on a clean
copy of this tree, the wheel's contents checked, the wheel installed with its `test` extra
(and PyTorch's CPU wheel) into a new venv, `show_config()` there reporting OpenMP, and
`pytest -m "not slow"` passing against the installed package (the tests are copied away
from the source tree, so `import hpcore` can only find the wheel).
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import types
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
SETUP_PY = ROOT / "setup.py"

pytestmark = pytest.mark.skipif(not PYPROJECT.exists() or not SETUP_PY.exists(),
                                reason="needs the source tree (pyproject.toml, setup.py)")

# Installed by `make test` beside the test extra, not in it (a CPU wheel from a local
# file here; PyPI's default build is CUDA with several GB of dependencies).  Tests that
# import it must importorskip it.
OUTSIDE_TEST_EXTRA = {"torch"}


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads(PYPROJECT.read_text())


def _req_name(req: str) -> tuple[str, set[str]]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(?:\[([^\]]*)\])?", req)
    assert m, req
    extras = {e.strip() for e in (m.group(2) or "").split(",") if e.strip()}
    return m.group(1).lower().replace("_", "-"), extras


def _extra_closure(extra: str) -> set[str]:
    """Distribution names an extra installs, following `hpcore[...]` self-references."""
    extras = _pyproject()["project"]["optional-dependencies"]
    out: set[str] = set()
    todo, seen = [extra], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in extras[name]:
            dist, sub = _req_name(req)
            if dist == "hpcore":
                todo.extend(sub)
            else:
                out.add(dist)
    return out


def _load_setup_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("hpcore_setup_under_test", SETUP_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # setup() only runs under __main__
    return mod


# --------------------------------------------------------------------------- fast checks

def test_build_system_and_single_version_source():
    data = _pyproject()
    requires = {(_req_name(r)[0]): r for r in data["build-system"]["requires"]}
    assert re.search(r"setuptools\s*>=\s*77", requires["setuptools"]), requires["setuptools"]
    assert {"cython", "numpy", "scipy"} <= set(requires)
    assert "version" not in data["project"] and "version" in data["project"]["dynamic"]
    attr = data["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "hpcore._version.__version__"
    import hpcore
    from hpcore import _version

    assert hpcore.__version__ == _version.__version__
    assert hpcore.show_config(file=open(os.devnull, "w"))["version"] == _version.__version__


def _third_party_imports(path: Path) -> set[str]:
    """Top-level modules a test file imports unconditionally (not under try/except)."""
    tree = ast.parse(path.read_text(), str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for sub in node.body:
                for inner in ast.walk(sub):
                    guarded.add(id(inner))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    local = {p.stem for p in path.parent.glob("*.py")} | {"hpcore", "conftest"}
    stdlib = set(sys.stdlib_module_names)
    return {n for n in names if n not in stdlib and n not in local}


def test_test_extra_holds_everything_the_suite_imports():
    """Every third-party module a test imports outright comes with `pip install .[test]`.

    Optional ones must go through `pytest.importorskip` (not an import statement) or
    sit in OUTSIDE_TEST_EXTRA, which `make test` installs itself.
    """
    to_dist = importlib.metadata.packages_distributions()
    wanted = _extra_closure("test") | {_req_name(r)[0] for r in _pyproject()["project"]["dependencies"]}
    missing = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        for module in _third_party_imports(path):
            dists = {d.lower().replace("_", "-") for d in to_dist.get(module, [module])}
            if dists & OUTSIDE_TEST_EXTRA or dists & wanted:
                continue
            missing.setdefault(module, []).append(path.name)
    assert not missing, f"imported by tests but not in the test extra: {missing}"


def test_extra_closure_follows_self_references():
    closure = _extra_closure("test")
    assert {"scikit-learn", "matplotlib", "pandas", "mpmath", "hypothesis", "dask",
            "optuna", "pytest"} <= closure
    assert "torch" not in closure
    assert _extra_closure("demo") == {"scikit-learn", "matplotlib"}


class _FakeCompiler:
    def __init__(self, compiler_type: str) -> None:
        self.compiler_type = compiler_type


def test_openmp_flags_follow_the_compiler(monkeypatch, tmp_path):
    setup_mod = _load_setup_module()
    monkeypatch.setattr(setup_mod.sys, "platform", "win32")
    assert setup_mod._openmp_candidates(_FakeCompiler("msvc")) == [(["/openmp"], [])]

    monkeypatch.setattr(setup_mod.sys, "platform", "linux")
    assert setup_mod._openmp_candidates(_FakeCompiler("unix")) == [(["-fopenmp"], ["-fopenmp"])]

    monkeypatch.setattr(setup_mod.sys, "platform", "darwin")
    monkeypatch.setenv("LIBOMP_PREFIX", str(tmp_path))
    first = setup_mod._openmp_candidates(_FakeCompiler("unix"))[0]
    assert first == (["-Xpreprocessor", "-fopenmp", f"-I{tmp_path}/include"],
                     [f"-L{tmp_path}/lib", "-lomp"])


def test_no_openmp_switch_and_build_jobs(monkeypatch):
    setup_mod = _load_setup_module()
    monkeypatch.setenv("HPCORE_NO_OPENMP", "1")
    assert setup_mod._openmp_flags(_FakeCompiler("unix")) == ([], [])
    monkeypatch.setenv("HPCORE_BUILD_JOBS", "3")
    assert setup_mod._n_jobs() == 3
    exts = setup_mod._extensions()
    assert {e.name for e in exts} == {f"hpcore._kernels.{p.stem}"
                                      for p in (ROOT / "src/hpcore/_kernels").glob("*.pyx")}
    assert all(src.endswith(".pyx") for e in exts for src in e.sources)  # cythonized at build


def test_cibuildwheel_configuration():
    cibw = _pyproject()["tool"]["cibuildwheel"]
    assert "not slow" in cibw["test-command"] and "{project}" in cibw["test-command"]
    assert "HPCORE_REQUIRE_OPENMP" in json.dumps(cibw["environment"])
    assert set(cibw["linux"]["archs"]) == {"x86_64", "aarch64"}
    assert "libomp" in cibw["macos"]["before-all"]
    assert cibw["windows"]["archs"] == ["AMD64"]


# --------------------------------------------------------------------------- the wheel

_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.so", "*.pyd", "*.c",
                                 "*.html", "*.egg-info", "__pycache__", "demo_out",
                                 ".pytest_cache", ".hypothesis", ".benchmarks", ".agents",
                                 "*.db-wal", "*.db-shm")


def _run(cmd, cwd, timeout, env=None):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, (f"{cmd} failed ({out.returncode})\n--- stdout\n"
                                 f"{out.stdout[-6000:]}\n--- stderr\n{out.stderr[-6000:]}")
    return out


def _check_wheel_contents(wheel: Path) -> None:
    from hpcore import _version

    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".c", ".cpp", ".html"))], "generated C in the wheel"
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    for pyx in (ROOT / "src/hpcore/_kernels").glob("*.pyx"):
        assert f"hpcore/_kernels/{pyx.stem}{ext}" in names, f"{pyx.stem} not compiled"
    assert "hpcore/_kernels/gp.pxd" in names and "hpcore/_kernels/rng.pxd" in names
    # no empty packages: every package folder holds more than an empty __init__.py
    zf = zipfile.ZipFile(wheel)
    folders: dict[str, list[zipfile.ZipInfo]] = {}
    for info in zf.infolist():
        if info.filename.startswith("hpcore/"):
            folders.setdefault(info.filename.rsplit("/", 1)[0], []).append(info)
    for folder, infos in folders.items():
        if not any(i.filename.endswith("/__init__.py") for i in infos):
            continue
        content = [i for i in infos if not (i.filename.endswith("/__init__.py") and i.file_size == 0)]
        assert content, f"empty package {folder} in the wheel"
    meta = zf.read(f"hpcore-{_version.__version__}.dist-info/METADATA").decode()
    assert f"Version: {_version.__version__}" in meta
    assert "License-Expression: BSD-3-Clause" in meta


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_wheel_installs_into_a_fresh_venv_and_passes_the_suite():
    # not pytest's tmp_path: other pytest sessions on the machine prune old basetemps,
    # and this test runs for many minutes
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="hpcore-wheel-test-"))
    try:
        _wheel_test(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _wheel_test(tmp_path: Path) -> None:
    src = tmp_path / "src-copy"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("HPCORE_REQUIRE_OPENMP", "1")

    # 1. the wheel, exactly as a user would build it (isolated build environment)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)],
         tmp_path, 1800, env)
    wheels = list(dist.glob("hpcore-*.whl"))
    assert len(wheels) == 1, wheels
    _check_wheel_contents(wheels[0])

    # 2. a fresh venv with the wheel and its test extra (+ torch's CPU wheel)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 300, env)
    vpy = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    reqs = [f"{wheels[0]}[test]"]
    torch_req = os.environ.get("HPCORE_TEST_TORCH", "torch==2.13.0")
    if torch_req:
        _run([str(vpy), "-m", "pip", "install", "-q", torch_req], tmp_path, 1800, env)
    _run([str(vpy), "-m", "pip", "install", "-q", *reqs], tmp_path, 1800, env)

    # 3. the installed package, not the source tree, and OpenMP compiled in
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("tests", "python"):
        if (src / name).exists():
            shutil.copytree(src / name, run_dir / name)
    shutil.copy(src / "pyproject.toml", run_dir / "pyproject.toml")  # pytest's config
    cfg = _run([str(vpy), "-c", "import hpcore, json, io; "
                "print(json.dumps([hpcore.__file__, hpcore.show_config(file=io.StringIO())]))"],
               run_dir, 120, env)
    where, info = json.loads(cfg.stdout.strip().splitlines()[-1])
    assert Path(where).resolve().is_relative_to(venv.resolve()), where
    assert info["openmp"] is True, info

    # 4. the suite against the wheel
    out = _run([str(vpy), "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                "--ignore=tests/test_wheel.py", "tests"], run_dir, 3000, env)
    tail = out.stdout.strip().splitlines()[-1]
    print(tail)
    # returncode 0 already means no failure; the closing line must also show tests ran
    assert re.search(r"\b\d+ passed\b", tail), tail
    assert not re.search(r"\b\d+ (failed|errors?)\b", tail), tail
