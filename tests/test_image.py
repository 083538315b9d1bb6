"""The Docker image, built for real: opt-in (``JIEBEI_IMAGE_TEST=1``) and only where podman or
docker can build; skipped, saying why, everywhere else (the default CI run included).

It builds the image from a copy of the build context, runs ``health`` and ``ask`` in it, checks
the runtime virtual environment has no pip, that a root-owned host folder bind-mounted on
/data gets a clear message, then changes a source file, rebuilds, and finds the change in
the new image with the dependency layers taken from the cache; and that a C extension that
does not compile stops the build with the compiler's error. The image size is printed
(``pytest -s``) and kept in the test report.

    JIEBEI_IMAGE_TEST=1 .venv/bin/python -m pytest -q -s tests/test_image.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_packaging import image_sources

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "花呗逾期了借呗用不了"
MARK = "（新版）"


def engine() -> str:
    """podman or docker, when one can build here; else skip, saying why."""
    if os.environ.get("JIEBEI_IMAGE_TEST") != "1":
        pytest.skip(
            "opt-in: set JIEBEI_IMAGE_TEST=1 to build the Docker image (needs podman or docker)"
        )
    problems = []
    for name in ("podman", "docker"):
        exe = shutil.which(name)
        if exe is None:
            problems.append(f"{name}: not installed")
            continue
        info = subprocess.run(
            [exe, "info"], capture_output=True, text=True, timeout=60, check=False
        )
        if info.returncode == 0:
            return exe
        problems.append(f"{name}: {(info.stderr.strip().splitlines() or ['no answer'])[-1]}")
    pytest.skip("no container engine can build here (" + "; ".join(problems) + ")")


def run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def copy_context(dest: Path) -> None:
    """What the Dockerfile copies, plus the Dockerfile and .dockerignore."""
    dest.mkdir()
    for name in [*image_sources(), "Dockerfile", ".dockerignore"]:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy2(path, dest / name)


@pytest.fixture
def built(tmp_path) -> Iterator[tuple[str, str, Path]]:
    exe = engine()
    tag = f"localhost/jiebei-bot-imagetest:{uuid.uuid4().hex[:8]}"
    context = tmp_path / "context"
    copy_context(context)
    try:
        yield exe, tag, context
    finally:
        run([exe, "rmi", "--force", tag])


def build(exe: str, tag: str, context: Path, *, ok: bool = True) -> str:
    args = [exe, "build", "--tag", tag]
    if Path(exe).name == "podman":
        args += ["--format", "docker"]  # keeps HEALTHCHECK (OCI images have none)
    result = run([*args, str(context)], timeout=1800)
    output = result.stdout + result.stderr
    assert (result.returncode == 0) == ok, output[-5000:]
    return output


def in_image(exe: str, tag: str, *command: str, volume: str | None = None):
    args = [exe, "run", "--rm", "--no-healthcheck"]
    if volume:
        args += ["--volume", volume]
    return run([*args, tag, *command])


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_image_answers_and_a_source_change_reaches_the_rebuilt_image(built, tmp_path):
    exe, tag, context = built
    build(exe, tag, context)

    health = in_image(exe, tag, "jiebei-bot", "health")
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.startswith("ok: ") and "compiled scorer" in health.stdout
    assert "no bot has run on it" in health.stdout
    answer = in_image(exe, tag, "jiebei-bot", "ask", QUESTION)
    assert answer.returncode == 0 and "花呗" in answer.stdout, answer.stdout + answer.stderr
    before = in_image(exe, tag, "jiebei-bot", "ask", "")
    assert before.returncode == 0 and MARK not in before.stdout

    # The runtime venv runs the bot, not pip or setuptools.
    for module in ("pip", "setuptools"):
        probe = in_image(exe, tag, "python", "-c", f"import {module}; print({module}.__file__)")
        assert probe.returncode != 0 or not probe.stdout.startswith("/opt/venv"), probe.stdout
    assert in_image(exe, tag, "test", "!", "-e", "/opt/venv/bin/pip").returncode == 0

    # A host folder owned by root, bind-mounted on /data: the bot (uid 10001) cannot write.
    host_data = tmp_path / "host-data"
    host_data.mkdir(mode=0o755)
    if os.getuid() == 0:
        refused = in_image(exe, tag, "jiebei-bot", "health", volume=f"{host_data}:/data")
        assert refused.returncode != 0
        assert "unable to open database file" in refused.stderr, refused.stderr
        assert "chown" in refused.stderr and "10001" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr

    size = int(run([exe, "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip())
    print(f"\nimage {tag}: {size / 1e6:.0f} MB ({exe})")

    # Change a source file; rebuild: the dependency layers come from the cache, the change
    # reaches the image.
    texts = context / "bot" / "texts.py"
    source = texts.read_text("utf-8")
    changed = re.sub(r'^EMPTY = "', f'EMPTY = "{MARK}', source, count=1, flags=re.MULTILINE)
    assert changed != source, 'bot/texts.py has no EMPTY = "..." line to change'
    texts.write_text(changed, "utf-8")
    output = build(exe, tag, context)
    if Path(exe).name == "podman":  # buildah: "STEP n/m: RUN ..." then "--> Using cache"
        steps = re.findall(r"STEP \d+/\d+: (.*)\n(-->[^\n]*)", output)
        deps = [
            done for step, done in steps if "/wheels/deps" in step or "/opt/venv /opt/venv" in step
        ]
        assert len(deps) >= 3 and all("Using cache" in d for d in deps), steps
        app = [done for step, done in steps if step.startswith("COPY --from=builder /wheels/app")]
        assert app and "Using cache" not in app[0], steps
    else:  # BuildKit
        assert len(re.findall(r"CACHED", output)) >= 3, output[-5000:]
    after = in_image(exe, tag, "jiebei-bot", "ask", "")
    assert after.returncode == 0, after.stderr
    assert MARK in after.stdout, after.stdout

    # A C extension that does not compile stops the build in the builder, with the
    # compiler's own error in the output (not later, as a missing module).
    scan = context / "knowledge" / "_scan.c"
    scan.write_text(scan.read_text("utf-8") + "\n#error scan deliberately broken\n", "utf-8")
    broken = build(exe, f"{tag}-broken", context, ok=False)
    assert "#error scan deliberately broken" in broken, broken[-5000:]
    assert "No module named" not in broken, broken[-5000:]
