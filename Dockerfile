# taskpipes: one image for the worker, scheduler, API and migration containers
# (deploy/compose.yaml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The project and its four packages (the README is the package's long description).
COPY pyproject.toml README.md ./
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
