# taskpipes: one image for the worker, scheduler, API and migration containers
# (deploy/compose.yaml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, exactly as locked (`make lock`): every file checked against its hash,
# nothing resolved on the day. A layer of its own, so code changes reuse it.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# The kit, installed as a wheel (the README is the package's long description), built with
# the locked setuptools and none of its dependencies fetched again.
COPY pyproject.toml README.md ./
COPY taskpipes ./taskpipes
RUN pip install --no-deps --no-build-isolation . && rm -r taskpipes build

# The GitHub application runs from the working directory, as a Django project does:
# `dramatiq actors`, `periodiq actors` and `taskpipes` put it on sys.path.
COPY actors ./actors
COPY pipelines ./pipelines
COPY db ./db
COPY web ./web
COPY githubsim ./githubsim

RUN useradd --system --uid 10001 --no-create-home --home-dir /app taskpipes
USER taskpipes

# API port, dramatiq's Prometheus exporter, the scheduler's /metrics.
EXPOSE 8000 9191 9192
CMD ["taskpipes", "--help"]
