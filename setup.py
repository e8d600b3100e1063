"""Builds the observers' C parts: the trace spool's encoder (bastion/observe/_spoolc.c) and
the metrics request table's observer (bastion/observe/_rowsc.c). Optional: where they do
not compile, the spool and the metrics use their Python code (bastion/observe/spool.py,
metrics.py), and log that once."""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers",
         "-Wno-cast-function-type"]

setup(
    ext_modules=[
        Extension(f"bastion.observe.{name}", [f"bastion/observe/{name}.c"],
                  depends=["bastion/observe/_slots.h"], extra_compile_args=FLAGS,
                  optional=True)
        for name in ("_spoolc", "_rowsc")
    ]
)
