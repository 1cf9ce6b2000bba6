"""Build the Cython kernels under src/hpcore/_kernels.

Metadata lives in pyproject.toml; this file only describes the compiled extensions.

OpenMP is probed with a tiny program, with the flags of the compiler in use: GCC and
clang on Linux ``-fopenmp``; Apple clang ``-Xpreprocessor -fopenmp`` + ``-lomp`` with
Homebrew's libomp (``LIBOMP_PREFIX``, else ``brew --prefix libomp``, else the usual
Homebrew folders); MSVC ``/openmp``.  Without OpenMP the kernels build serially (a warning
is printed); ``HPCORE_NO_OPENMP=1`` forces the serial build and ``HPCORE_REQUIRE_OPENMP=1``
turns a missing OpenMP into a build error.

The extensions are cythonized and compiled in parallel: ``HPCORE_BUILD_JOBS`` (default:
the usable CPU count) or ``build_ext -j N``.  ``HPCORE_DEBUG=1`` keeps debug symbols
(default ``-g0``: smaller wheels, a faster compile).
"""
from __future__ import annotations

import glob
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
    """
)

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}


def _n_jobs() -> int:
    env = os.environ.get("HPCORE_BUILD_JOBS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _libomp_prefix() -> str | None:
    """Homebrew's libomp on macOS (Apple clang ships no OpenMP runtime)."""
    env = os.environ.get("LIBOMP_PREFIX")
    if env:
        return env
    if shutil.which("brew"):
        try:
            out = subprocess.run(["brew", "--prefix", "libomp"], capture_output=True, text=True,
                                 timeout=60, check=True).stdout.strip()
            if out and os.path.isdir(out):
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    for prefix in ("/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"):
        if os.path.isdir(prefix):
            return prefix
    return None


def _openmp_candidates(compiler) -> list[tuple[list[str], list[str]]]:
    """(compile_args, link_args) to try, in order, for this compiler."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        out = []
        prefix = _libomp_prefix()
        if prefix:
            out.append((["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                        [f"-L{prefix}/lib", "-lomp"]))
        out.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))  # libomp on the default paths
        out.append((["-fopenmp"], ["-fopenmp"]))                   # GCC or LLVM clang
        return out
    return [(["-fopenmp"], ["-fopenmp"])]                          # GCC, clang (+libomp), icx


def _openmp_flags(compiler) -> tuple[list[str], list[str]]:
    """Return (compile_args, link_args) for OpenMP, or empty lists without it."""
    if os.environ.get("HPCORE_NO_OPENMP") == "1":
        print("hpcore: HPCORE_NO_OPENMP=1, building the kernels serially")
        return [], []
    for cflags, lflags in _openmp_candidates(compiler):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as fh:
                fh.write(OPENMP_PROBE)
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=lflags)
            except Exception:  # noqa: BLE001 - any compiler failure means "not these flags"
                continue
            print(f"hpcore: OpenMP with {' '.join(cflags)} / {' '.join(lflags) or '(no link flags)'}")
            return cflags, lflags
    if os.environ.get("HPCORE_REQUIRE_OPENMP") == "1":
        raise RuntimeError("hpcore: HPCORE_REQUIRE_OPENMP=1 but the compiler has no OpenMP support")
    print("hpcore: WARNING: the C compiler has no OpenMP support; kernels are built serially",
          file=sys.stderr)
    return [], []


class BuildExt(build_ext):
    """Cythonize (in parallel where processes fork), then compile in parallel with OpenMP."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = _n_jobs()

    def run(self):
        # setuptools builds "in place" into build/lib and copies back, so it judges
        # staleness by build/lib; an editable install compiles in a temporary folder.
        # Remember the request to compare against the copy in the source tree instead.
        self._hpcore_inplace = bool(self.inplace)
        super().run()

    def build_extension(self, ext):
        from setuptools.modified import newer_group

        if getattr(self, "_hpcore_inplace", False) and not self.force:
            build_py = self.get_finalized_command("build_py")
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            if os.path.exists(inplace_file) and not newer_group(
                    list(ext.sources) + list(ext.depends or []), inplace_file, "newer"):
                # up to date in the source tree (e.g. built by `pip install -e .`)
                self.mkpath(os.path.dirname(regular_file))
                self.copy_file(inplace_file, regular_file, level=self.verbose)
                return
        super().build_extension(ext)

    def build_extensions(self):
        import numpy as np
        from Cython.Build import cythonize

        jobs = self.parallel if isinstance(self.parallel, int) else _n_jobs()
        # Cython's parallel mode uses a process pool; under spawn it would re-run setup.py.
        forks = multiprocessing.get_start_method(allow_none=True) in (None, "fork") \
            and sys.platform.startswith("linux") and sys.version_info < (3, 14)
        generated = cythonize(
            self.extensions,
            nthreads=jobs if forks and jobs > 1 else 0,
            compiler_directives=CYTHON_DIRECTIVES,
            quiet=True,
        )
        # keep setuptools' own Extension objects (finalize_options annotated them)
        c_sources = {ext.name: ext.sources for ext in generated}
        for ext in self.extensions:
            ext.sources = c_sources[ext.name]
        cflags, lflags = _openmp_flags(self.compiler)
        msvc = self.compiler.compiler_type == "msvc"
        opt = ["/O2"] if msvc else ["-O3"]
        if not msvc and os.environ.get("HPCORE_DEBUG") != "1":
            opt.append("-g0")
        for ext in self.extensions:
            ext.include_dirs.append(np.get_include())
            ext.extra_compile_args = opt + cflags + ext.extra_compile_args
            ext.extra_link_args = lflags + ext.extra_link_args
        super().build_extensions()


def _extensions() -> list[Extension]:
    # HPCORE_ONLY=gp,acquisition builds just those kernels (development convenience).
    only = {n for n in os.environ.get("HPCORE_ONLY", "").split(",") if n}
    exts = []
    for pyx in sorted(glob.glob(os.path.join("src", "hpcore", "_kernels", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        exts.append(
            Extension(
                f"hpcore._kernels.{name}",
                [pyx.replace(os.sep, "/")],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return exts


if __name__ == "__main__":  # setuptools' build backend runs this file as __main__ too
    setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
