"""Build the C engine (memlens._engine) with only gcc and the Python headers."""
import glob
import os
import sys
import sysconfig

from setuptools import Extension, setup

if sysconfig.get_config_var("Py_GIL_DISABLED"):
    sys.exit(
        "memlens: the free-threaded CPython build (%s) is not supported in v1; "
        "install memlens with a regular (GIL) CPython 3.10-3.13." % sys.version.split()[0]
    )

sources = sorted(glob.glob("csrc/**/*.c", recursive=True))
sources = [s for s in sources if not s.startswith(os.path.join("csrc", "tests"))]
extra = ["-std=gnu11", "-O2", "-flto", "-fvisibility=hidden", "-Wall", "-Wextra",
         "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
if os.environ.get("MEMLENS_WERROR"):
    extra.append("-Werror")
if os.environ.get("MEMLENS_SANITIZE"):
    extra += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]

setup(
    ext_modules=[
        Extension(
            "memlens._engine",
            sources=sources,
            include_dirs=["csrc"],
            extra_compile_args=extra,
            extra_link_args=["-pthread", "-flto", "-O2"] + (
                ["-fsanitize=address,undefined"] if os.environ.get("MEMLENS_SANITIZE") else []),
        )
    ],
)
