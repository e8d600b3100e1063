"""Builds the C parts of the request path: the trace spool's encoder
(bastion/observe/_spoolc.c), the metrics request table's observer (bastion/observe/_rowsc.c)
and the rate limiter's common case (bastion/governance/_limitsc.c). Optional: where they do
not compile, the spool, the metrics and the limiter use their Python code
(bastion/observe/spool.py, metrics.py, bastion/governance/limits.py)."""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers",
         "-Wno-cast-function-type"]

setup(
    ext_modules=[
        Extension(f"bastion.observe.{name}", [f"bastion/observe/{name}.c"],
                  depends=["bastion/observe/_slots.h"], extra_compile_args=FLAGS,
                  optional=True)
        for name in ("_spoolc", "_rowsc")
    ] + [
        Extension("bastion.governance._limitsc", ["bastion/governance/_limitsc.c"],
                  extra_compile_args=FLAGS, optional=True, libraries=["m"])
    ]
)
