"""Build the Cython kernels under src/hpcore/_kernels.

OpenMP is probed with a tiny program.  Without it the kernels build serially (a
warning is printed); ``HPCORE_NO_OPENMP=1`` forces the serial build and
``HPCORE_REQUIRE_OPENMP=1`` turns a missing OpenMP into a build error.
"""
import glob
import os
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
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


def _openmp_flags(compiler) -> tuple[list[str], list[str]]:
    """Return (compile_args, link_args) for OpenMP, or empty lists without it."""
    if os.environ.get("HPCORE_NO_OPENMP") == "1":
        print("hpcore: HPCORE_NO_OPENMP=1, building the kernels serially")
        return [], []
    if sys.platform == "win32":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as fh:
                fh.write(OPENMP_PROBE)
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=lflags)
            except Exception:  # noqa: BLE001 - any compiler failure means "no OpenMP"
                continue
            return cflags, lflags
    if os.environ.get("HPCORE_REQUIRE_OPENMP") == "1":
        raise RuntimeError("hpcore: HPCORE_REQUIRE_OPENMP=1 but the compiler has no OpenMP support")
    print("hpcore: WARNING: the C compiler has no OpenMP support; kernels are built serially",
          file=sys.stderr)
    return [], []


class BuildExt(build_ext):
    def build_extensions(self):
        cflags, lflags = _openmp_flags(self.compiler)
        opt = ["/O2"] if self.compiler.compiler_type == "msvc" else ["-O3"]
        for ext in self.extensions:
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
                [pyx],
                include_dirs=[np.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )


setup(
    packages=find_packages("src"),
    package_dir={"": "src"},
    package_data={"hpcore": ["_kernels/*.pxd", "_kernels/*.pyx"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExt},
)
