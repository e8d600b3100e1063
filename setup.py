"""Builds the trace spool's C encoder (bastion/observe/_spoolc.c). Optional: where it does
not compile, the spool uses its Python encoder (bastion/observe/spool.py), and its writer
logs that once at start."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bastion.observe._spoolc",
            ["bastion/observe/_spoolc.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
            optional=True,
        )
    ]
)
