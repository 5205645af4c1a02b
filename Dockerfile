# taskpipes: one image for the worker, scheduler, API and migration containers
# (deploy/compose.yaml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them: pyproject.toml alone is
# enough for pip to resolve them. README* matches nothing harmlessly if absent.
COPY pyproject.toml README* ./
COPY taskpipes ./taskpipes
COPY actors ./actors
COPY pipelines ./pipelines
COPY db ./db
RUN pip install .

RUN useradd --system --uid 10001 --no-create-home --home-dir /app taskpipes
USER taskpipes

# API port, dramatiq's Prometheus exporter, the scheduler's /metrics.
EXPOSE 8000 9191 9192
CMD ["taskpipes", "--help"]
