# syntax=docker/dockerfile:1
#
# jiebei-bot: the Telegram help bot, long polling by default.
#
#   docker compose up -d          (compose.yaml: the volume, .env, restart, healthcheck)
#   docker build -t jiebei-bot .
#   docker run -d --name jiebei-bot --env-file .env -v jiebei-data:/data jiebei-bot
#   docker run --rm -v jiebei-data:/data jiebei-bot jiebei-bot kb export > backup.json
#
# Webhook mode instead of polling (behind a TLS-terminating proxy; see EXPOSE below):
#   docker run ... -p 8443:8443 jiebei-bot jiebei-bot run --webhook https://bot.example.org/tg
#
# Builds with Docker (BuildKit or the classic builder) and with podman/buildah.

# ---------------------------------------------------------------------------------------
# builder: every wheel the runtime needs, dependencies first so that their layer is reused
# while only the project's source changes.
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A C compiler for the matcher's compiled search (knowledge/_scan.c), in this stage only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# The dependency list comes from pyproject.toml alone, so this layer and the next are
# rebuilt only when pyproject.toml changes. jieba ships only an sdist; it is built here.
COPY pyproject.toml ./
RUN python -c "import pathlib, tomllib; deps = tomllib.loads(pathlib.Path('pyproject.toml').read_text())['project']['dependencies']; pathlib.Path('requirements.txt').write_text('\n'.join(deps) + '\n')" \
    && pip wheel --wheel-dir /wheels/deps --requirement requirements.txt \
    && cp requirements.txt /wheels/deps/requirements.txt

# The project itself, as a wheel (the shipped entries and lexicon are package data, and
# setup.py compiles knowledge/_scan.c into it). JIEBEI_REQUIRE_SCAN=1 makes the extension
# mandatory: a failed compile stops the build here, and pip shows the compiler's error.
COPY README.md setup.py ./
COPY bot ./bot
COPY knowledge ./knowledge
RUN JIEBEI_REQUIRE_SCAN=1 pip wheel --no-deps --wheel-dir /wheels/app . \
    && python -c "import glob, zipfile; (w,) = glob.glob('/wheels/app/*.whl'); assert any('knowledge/_scan.' in n for n in zipfile.ZipFile(w).namelist()), 'the wheel has no knowledge._scan'"

# ---------------------------------------------------------------------------------------
# venv: the dependencies installed into /opt/venv, without pip or setuptools: the base
# image's own pip installs them from outside (pip --python), and sqlite-utils' dependency on
# pip (only for its plugin installer, which the bot never runs) is removed after pip check.
# Rebuilt only when the dependency wheels change.
FROM python:3.11-slim AS venv

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=builder /wheels/deps /wheels/deps
RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-index --find-links=/wheels/deps \
       --requirement /wheels/deps/requirements.txt \
    && pip --python /opt/venv/bin/python check \
    && pip --python /opt/venv/bin/python uninstall --yes pip \
    && rm -f /opt/venv/bin/Activate.ps1 /opt/venv/bin/activate.csh /opt/venv/bin/activate.fish \
    && test ! -e /opt/venv/bin/pip \
    && ! /opt/venv/bin/python -c "import pip" 2>/dev/null \
    && ! /opt/venv/bin/python -c "import setuptools" 2>/dev/null

# ---------------------------------------------------------------------------------------
# runtime: the dependencies' virtual environment, then the project's wheel on top: two
# explicit inputs, so a source change rebuilds only the small layers from the app wheel on
# (with BuildKit and with buildah alike), and always reaches the image. No compiler, no sources.
FROM python:3.11-slim

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="jiebei-bot" \
      org.opencontainers.image.description="借呗助手: a Telegram help bot that explains why an Alipay 借呗 credit line stopped and what to do" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    KNOWLEDGE_DB=/data/knowledge.db \
    JIEBA_CACHE_DIR=/opt/jieba-cache

# A fixed, unprivileged uid/gid: the /data volume's owner, and numeric so that Kubernetes'
# runAsNonRoot can verify it. --no-log-init keeps a high uid from bloating /var/log/faillog.
RUN groupadd --system --gid 10001 bot \
    && useradd --system --no-log-init --uid 10001 --gid bot --home-dir /home/bot \
       --create-home --shell /usr/sbin/nologin bot

COPY --from=venv /opt/venv /opt/venv

# The project, without dependencies (all in the venv above, checked there); the imports prove
# the compiled search and the Telegram side made it in.
COPY --from=builder /wheels/app /wheels/app
RUN pip --python /opt/venv/bin/python install --no-index --no-deps /wheels/app/*.whl \
    && rm -rf /wheels \
    && python -c "import knowledge._scan, bot.app, bot.cli"

# The bot segments with rjieba (no cache needed). jieba, the segmenter of record and the
# fallback (JIEBEI_SEGMENTER=jieba), builds a dictionary cache on first use (a couple of
# seconds). Build it now, as root, into JIEBA_CACHE_DIR and leave it world-readable but not
# writable: the runtime user loads it, and jieba only logs if it ever wanted to rewrite it.
RUN python -c "from knowledge.text import TextPipeline; TextPipeline(segmenter='jieba')" \
    && test -n "$(ls -A /opt/jieba-cache)" \
    && chmod -R a+rX,go-w /opt/jieba-cache

# The knowledge base lives on a volume; it is created and seeded on first start.
RUN mkdir /data && chown bot:bot /data
VOLUME ["/data"]

WORKDIR /home/bot
USER 10001:10001

# Only used in webhook mode (jiebei-bot run --webhook URL --port 8443).
EXPOSE 8443

# Opens the knowledge base and asks the matcher one question, and fails when the running bot
# has not heard from Telegram for HEALTH_MAX_POLL_AGE seconds (its heartbeat next to the
# knowledge base); it does not call Telegram itself.
HEALTHCHECK --interval=60s --timeout=20s --start-period=30s --retries=3 \
    CMD ["jiebei-bot", "health"]

# python-telegram-bot stops cleanly on SIGTERM (docker stop), so no init process is needed.
CMD ["jiebei-bot", "run"]
