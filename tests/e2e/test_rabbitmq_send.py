"""A publish RabbitMQ itself refuses, on the real broker: no fake, no `faults` mark.

A queue at its length limit with `overflow: reject-publish` answers a confirmed publish with
a nack, so the send fails for real (dramatiq raises after its own attempts). The policy is
set on this test's own virtual host, so nothing else on the machine sees it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import dramatiq
import pika
from sqlalchemy import create_engine, select

from taskpipes.store.tables import Run
from tests.processes import service_env, taskpipes
from tests.queues import count, declare, publish, wait_until
from tests.services import rabbitmqctl

TICK = "2026-08-21T12:00:00Z"
REFUSE_ALL = json.dumps({"max-length": 0, "overflow": "reject-publish"})


def runs_of(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [(r.pipeline, r.status) for r in conn.execute(select(Run))]
    finally:
        engine.dispose()


def policy_on(vhost: str, queue: str) -> str:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "policy", "--no-table-headers"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return dict(line.split("\t") for line in listed.stdout.splitlines() if "\t" in line).get(
        queue, ""
    )


def test_a_publish_rabbitmq_refuses_fails_the_run_cleanly_and_a_rerun_sends(
    tmp_path: Path, sqlite_url: str, rabbitmq: str, simulator
) -> None:
    # Given github_top's queue on RabbitMQ refusing every publish
    env = service_env(tmp_path, DATABASE_URL=sqlite_url, BROKER_URL=rabbitmq,
                      GITHUB_API_URL=simulator.url)  # fmt: skip
    assert taskpipes(["db", "upgrade"], env).returncode == 0
    vhost = rabbitmq.rsplit("/", 1)[1]
    declare(rabbitmq, "github_top")
    rabbitmqctl("set_policy", "-p", vhost, "refuse", "^github_top$", REFUSE_ALL,
                "--apply-to", "queues")  # fmt: skip
    wait_until(lambda: policy_on(vhost, "github_top") == "refuse", 30, "the policy to apply")
    # A quorum queue enforces the limit once exceeded: it takes one message past it before
    # it refuses (RabbitMQ 3.10, measured; a classic queue refuses the first). Fill it.
    with contextlib.suppress(pika.exceptions.NackError):
        publish(rabbitmq, "github_top", dramatiq.Message("github_top", "filler", (), {}, {}))
    filler = count(rabbitmq, "github_top")

    # When a tick is asked for
    refused = taskpipes(["run", "github_top", "--at", TICK, "--timeout", "5"], env)

    # Then the command fails with one line naming the broker, no password, no traceback;
    # nothing was queued and no run waits for a message that never left
    assert refused.returncode == 1, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if "broker error" in line]
    assert len(errors) == 1 and "NackError" in errors[0], refused.stderr
    assert "Traceback" not in refused.stderr and "guest:guest" not in refused.stderr
    assert count(rabbitmq, "github_top") == filler
    assert runs_of(sqlite_url) == []

    # When RabbitMQ takes messages again and the tick is asked for again (no workers here,
    # so the command gives up waiting once the message is sent)
    rabbitmqctl("clear_policy", "-p", vhost, "refuse")
    wait_until(lambda: policy_on(vhost, "github_top") == "", 30, "the policy to lift")
    taskpipes(["run", "github_top", "--at", TICK, "--timeout", "1"], env)

    # Then the message is in the queue and its run waits for it
    assert count(rabbitmq, "github_top") == filler + 1
    assert runs_of(sqlite_url) == [("github_top", "queued")]
