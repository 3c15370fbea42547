"""The compiled hot path: the decoder's plain path and the batcher's common step (Cython).

Everything else of the package is declared in pyproject.toml. Without a C compiler the package
still installs and runs, on its general paths only (``readings.decode.COMPILED``,
``batcher.batch.COMPILED``).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

# No contraction into fused multiply-adds: the compiled paths give the interpreter's floats to the last bit.
FLAGS = ["-O2", "-ffp-contract=off"]

setup(
    ext_modules=cythonize(
        [
            Extension("readings._plain", ["readings/_plain.pyx"], extra_compile_args=FLAGS, optional=True),
            Extension("batcher._steps", ["batcher/_steps.pyx"], extra_compile_args=FLAGS, optional=True),
        ],
        compiler_directives={"language_level": 3},
        quiet=True,
    )
)
