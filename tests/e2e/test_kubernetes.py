"""deploy/kubernetes: every overlay builds with kustomize and validates offline.

Core kinds are checked by kubernetes-validate against the Kubernetes API schemas (strict:
an unknown field fails); KEDA's kinds against the openAPIV3Schema of KEDA's own CRDs
(tests/keda). The rest checks the promises docs/how-to/deploy.md makes about the manifests.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from taskpipes.declare.pipeline import STAGE_TIME_LIMIT_MS
from tests.services import QUEUES, unavailable

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KEDA_CRDS = Path(__file__).resolve().parents[1] / "keda"
OVERLAYS = ["base", "overlays/production", "overlays/scale-to-zero"]
KUBERNETES_VERSION = "1.30.0"


@cache
def build(overlay: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of an overlay: the resources a `kubectl apply -k` would send."""
    if shutil.which("kubectl") is None:
        unavailable("kubectl (for `kubectl kustomize`)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in build(overlay) if r["kind"] == kind}


@cache
def crd_schema(kind: str) -> dict[str, Any]:
    for path in KEDA_CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
            return version["schema"]["openAPIV3Schema"]
    raise LookupError(kind)


def containers(pod_owner: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_owner["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_manifest_validates_strictly(overlay: str) -> None:
    core = [r for r in build(overlay) if not r["apiVersion"].startswith("keda.sh/")]
    assert core
    for resource in core:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_objects_validate_against_kedas_own_crds(overlay: str) -> None:
    keda = [r for r in build(overlay) if r["apiVersion"] == "keda.sh/v1alpha1"]
    assert {r["kind"] for r in keda} == {"ScaledObject", "TriggerAuthentication"}
    for resource in keda:
        jsonschema.validate(resource, crd_schema(resource["kind"]))


def test_the_crd_check_rejects_a_broken_scaled_object() -> None:
    broken = dict(of_kind("base", "ScaledObject")["taskpipes-worker"])
    broken["spec"] = {**broken["spec"], "minReplicaCount": "one"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, crd_schema("ScaledObject"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_only_by_reference(overlay: str) -> None:
    resources = build(overlay)
    assert not [r for r in resources if r["kind"] == "Secret"]
    for owner in [r for r in resources if r["kind"] in ("Deployment", "Job")]:
        for container in containers(owner):
            for variable in container.get("env", []):
                assert "value" not in variable, (owner["metadata"]["name"], variable["name"])
    config = of_kind(overlay, "ConfigMap")["taskpipes-config"]["data"]
    assert not {"DATABASE_URL", "BROKER_URL", "GITHUB_TOKEN"} & set(config)


def test_workers_outlast_a_stage_and_wait_for_the_migration() -> None:
    deployments = of_kind("base", "Deployment")
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        assert "taskpipes db check" in " ".join(init["command"]), name
        for container in containers(deployment):
            assert {"requests", "limits"} <= set(container["resources"]), name
            assert "memory" in container["resources"]["limits"], name
    for name in ("taskpipes-worker", "taskpipes-worker-stargazers"):
        grace = deployments[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > STAGE_TIME_LIMIT_MS / 1000
    assert deployments["taskpipes-scheduler"]["spec"]["replicas"] == 2
    assert of_kind("base", "Job")["taskpipes-migrate"]["spec"]["template"]["spec"]["containers"][0][
        "command"
    ] == ["taskpipes", "db", "upgrade"]


def test_the_api_is_probed_on_healthz_and_readyz() -> None:
    (api,) = of_kind("base", "Deployment")["taskpipes-api"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(of_kind("base", "PodDisruptionBudget")) == {
        "taskpipes-api",
        "taskpipes-scheduler",
        "taskpipes-worker",
    }


def worker_queues(deployment: dict[str, Any]) -> list[str]:
    (worker,) = deployment["spec"]["template"]["spec"]["containers"]
    return worker["command"][worker["command"].index("--queues") + 1 :]


def test_every_queue_has_workers_and_keda_counts_ready_plus_unacked() -> None:
    deployments = of_kind("base", "Deployment")
    consumed = [q for d in deployments.values() if "--queues" in str(d) for q in worker_queues(d)]
    assert sorted(consumed) == sorted(QUEUES)
    triggered = set()
    for scaled in of_kind("base", "ScaledObject").values():
        target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            triggered.add(meta["queueName"])
            assert (trigger["type"], meta["protocol"], meta["mode"]) == (
                "rabbitmq",
                "http",
                "QueueLength",
            )
            assert meta.get("excludeUnacknowledged", "false") == "false"
            assert meta["queueName"].removesuffix(".DQ") in worker_queues(target)
            assert trigger["authenticationRef"]["name"] == "taskpipes-rabbitmq-management"
    # Every pipeline's backlog scales its workers; only the kit's light default queue
    # (catch-up, housekeeping) rides along without a trigger of its own.
    assert set(QUEUES) - {"default"} <= triggered


def test_a_floor_of_one_worker_and_scale_to_zero_for_stargazers_only() -> None:
    def floors(overlay: str) -> dict[str, int]:
        return {
            n: s["spec"]["minReplicaCount"] for n, s in of_kind(overlay, "ScaledObject").items()
        }

    assert floors("base") == {"taskpipes-worker": 1, "taskpipes-worker-stargazers": 1}
    assert floors("overlays/scale-to-zero") == {
        "taskpipes-worker": 1,
        "taskpipes-worker-stargazers": 0,
    }


def test_production_runs_on_quorum_queues() -> None:
    config = of_kind("overlays/production", "ConfigMap")["taskpipes-config"]["data"]
    assert config["TASKPIPES_QUEUE_TYPE"] == "quorum"
    assert of_kind("base", "ConfigMap")["taskpipes-config"]["data"]["TASKPIPES_QUEUE_TYPE"] == (
        "classic"
    )
