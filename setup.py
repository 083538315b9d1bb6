"""The one thing pyproject.toml cannot declare stably: the compiled part of the matcher.

``knowledge/_scan.c`` is the matcher's top-N search (see knowledge/matcher.py). It is
optional: without a C compiler the install still succeeds and the matcher falls back to its
numpy path, which gives the same answers, slower (``jiebei-bot health`` says which is used).
``JIEBEI_REQUIRE_SCAN=1`` makes it mandatory (the Docker image's builder sets it): a failed
compile then stops the build, and pip shows the compiler's error instead of hiding it.
"""

import os

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "knowledge._scan",
            sources=["knowledge/_scan.c"],
            # Same floating-point operations as the numpy scorer: no fused multiply-add.
            extra_compile_args=["-O2", "-ffp-contract=off"],
            optional=os.environ.get("JIEBEI_REQUIRE_SCAN") != "1",
        )
    ]
)
