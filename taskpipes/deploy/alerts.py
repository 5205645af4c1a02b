"""The Prometheus alert rules and their `promtool test rules` cases, from the declared pipelines.

PipelineStale has one clause per scheduled pipeline, with that pipeline's own period, and
one pair of cases per scheduled pipeline (quiet at two periods, firing just after), so a
new pipeline is watched and its rule tested without a hand edit. The rules and cases that
do not depend on the pipelines are kept as they are written, in fixed_rules.yml and
fixed_rule_tests.yml beside this module. An application's rules for its own metrics, and
their cases, come last (`extra`).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files

from taskpipes.deploy.cadence import Cadence

# How many periods without a success make a pipeline stale (the rule and the dashboards).
STALE_PERIODS = 2
# The rule's `for:` plus the evaluations it takes: a stale pipeline fires by then.
FIRING_AFTER_S = 10 * 60
LAST_SUCCESS = "taskpipes_pipeline_last_success_timestamp_seconds"
PAUSED_SINCE = "taskpipes_pipeline_paused_since_timestamp_seconds"
# A pause longer than this is worth a reminder (PipelinePausedLong).
PAUSED_LONG_S = 24 * 3600
PAUSED_FOR = 5 * 60
# A paused pipeline is not stale: it was stopped on purpose (`taskpipes pause`).
NOT_PAUSED = f"unless on (pipeline) (max by (pipeline) ({PAUSED_SINCE}) > 0)"
GENERATED = "# Generated from the pipeline declarations by `taskpipes generate`: do not edit.\n"


def scheduled(pipelines: Sequence[Cadence]) -> list[Cadence]:
    found = [p for p in pipelines if p.scheduled]
    if not found:
        raise ValueError("no scheduled pipeline declared: PipelineStale would watch nothing")
    return found


def _fixed(name: str) -> str:
    return files("taskpipes.deploy").joinpath(name).read_text()


def _then(extra: str) -> str:
    """The application's text after the kit's, a blank line between."""
    return "\n" + extra if extra else ""


def rules(pipelines: Sequence[Cadence], extra: str = "") -> str:
    """The text of alerts.yml; `extra` is the application's rule groups, YAML items of
    `groups:`."""
    watched = scheduled(pipelines)
    periods = "".join(f"      #   {p.name}: {p.period_seconds} s\n" for p in watched)
    on_demand = ", ".join(p.name for p in pipelines if not p.scheduled) or "none"
    clauses = "\n          or\n".join(
        f"          (time() - max by (pipeline) ({LAST_SUCCESS}"
        f'{{pipeline="{p.name}"}}) > {STALE_PERIODS} * {p.period_seconds})'
        for p in watched
    )
    return (
        GENERATED + "# taskpipes alerts. Tested by tests/alerts_test.yml (`promtool test rules`).\n"
        "groups:\n"
        "  - name: taskpipes-pipelines\n"
        "    rules:\n"
        "      # Stale = no success for two schedule periods, each pipeline's own period:\n"
        f"{periods}"
        f"      # On demand, never stale: {on_demand}.\n"
        "      # max by (pipeline): each worker container exports its own series.\n"
        "      # A paused pipeline is not stale (PipelinePausedLong reminds of it instead).\n"
        "      - alert: PipelineStale\n"
        "        expr: |\n"
        "          (\n"
        f"{clauses}\n"
        f"          ) {NOT_PAUSED}\n"
        "        for: 5m\n"
        "        labels:\n"
        "          severity: critical\n"
        "        annotations:\n"
        '          summary: "Pipeline {{ $labels.pipeline }} has not succeeded for two schedule periods"\n'
        '          description: "Last success of {{ $labels.pipeline }} was {{ $value | humanizeDuration }} ago."\n'
        "\n" + PAUSED_LONG_RULE + _fixed("fixed_rules.yml") + _then(extra)
    )


PAUSED_LONG_RULE = (
    "      # `taskpipes pause` for more than a day: forgotten, most likely.\n"
    "      - alert: PipelinePausedLong\n"
    "        expr: |\n"
    f"          (time() - max by (pipeline) ({PAUSED_SINCE}) > {PAUSED_LONG_S})\n"
    f"          and on (pipeline) (max by (pipeline) ({PAUSED_SINCE}) > 0)\n"
    f"        for: {PAUSED_FOR // 60}m\n"
    "        labels:\n"
    "          severity: warning\n"
    "        annotations:\n"
    '          summary: "Pipeline {{ $labels.pipeline }} has been paused for more than a day"\n'
    '          description: "{{ $labels.pipeline }} was paused {{ $value | humanizeDuration }} ago; `taskpipes resume {{ $labels.pipeline }}` runs it again."\n'
    "\n"
)


def humanize_duration(seconds: int) -> str:
    """Prometheus's `humanizeDuration` of a whole number of seconds (at least one)."""
    minutes, secs = divmod(seconds, 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    if days:
        return f"{days}d {hrs}h {mins}m {secs}s"
    if hrs:
        return f"{hrs}h {mins}m {secs}s"
    if mins:
        return f"{mins}m {secs}s"
    return f"{secs}s"


def stale_cases(pipeline: Cadence) -> str:
    """A pipeline whose last success stays at time 0: quiet at two periods, firing after."""
    limit = STALE_PERIODS * (pipeline.period_seconds or 0)
    firing = limit + FIRING_AFTER_S
    return (
        f"  # PipelineStale for {pipeline.name} (period {pipeline.period_seconds} s): not yet at\n"
        f"  # {limit} s since its last success, firing {FIRING_AFTER_S} s later.\n"
        "  - interval: 1m\n"
        "    input_series:\n"
        f'      - series: \'{LAST_SUCCESS}{{pipeline="{pipeline.name}", instance="w1"}}\'\n'
        f"        values: '0x{firing // 60}'\n"
        "    alert_rule_test:\n"
        f"      - eval_time: {limit}s\n"
        "        alertname: PipelineStale\n"
        "        exp_alerts: []\n"
        f"      - eval_time: {firing}s\n"
        "        alertname: PipelineStale\n"
        "        exp_alerts:\n"
        "          - exp_labels:\n"
        "              severity: critical\n"
        f"              pipeline: {pipeline.name}\n"
        "            exp_annotations:\n"
        f'              summary: "Pipeline {pipeline.name} has not succeeded for two schedule periods"\n'
        f'              description: "Last success of {pipeline.name} was {humanize_duration(firing)} ago."\n'
        "\n"
    )


def fresh_case(pipeline: Cadence) -> str:
    """One worker's series is stale, the other keeps succeeding: the pipeline is fresh."""
    firing = STALE_PERIODS * (pipeline.period_seconds or 0) + FIRING_AFTER_S
    series = f'{LAST_SUCCESS}{{pipeline="{pipeline.name}", instance='
    return (
        f"  # PipelineStale: {pipeline.name} keeps succeeding on one worker, not on the other.\n"
        "  - interval: 1m\n"
        "    input_series:\n"
        f"      - series: '{series}\"w1\"}}'\n"
        f"        values: '0+60x{firing // 60}'\n"
        f"      - series: '{series}\"w2\"}}'\n"
        f"        values: '0x{firing // 60}'\n"
        "    alert_rule_test:\n"
        f"      - eval_time: {firing}s\n"
        "        alertname: PipelineStale\n"
        "        exp_alerts: []\n"
        "\n"
    )


def paused_cases(pipeline: Cadence) -> str:
    """Paused a minute in, never succeeded: PipelineStale stays quiet; PipelinePausedLong
    is quiet after 23 hours and fires once the day and its `for:` have passed."""
    stale_firing = STALE_PERIODS * (pipeline.period_seconds or 0) + FIRING_AFTER_S
    paused_at = 60
    long_firing = PAUSED_LONG_S + paused_at + PAUSED_FOR + 240
    minutes = long_firing // 60
    return (
        f"  # {pipeline.name} paused at {paused_at} s and never succeeded: not stale, but\n"
        "  # PipelinePausedLong after a day.\n"
        "  - interval: 1m\n"
        "    input_series:\n"
        f'      - series: \'{LAST_SUCCESS}{{pipeline="{pipeline.name}", instance="w1"}}\'\n'
        f"        values: '0x{minutes}'\n"
        f'      - series: \'{PAUSED_SINCE}{{pipeline="{pipeline.name}", instance="w1"}}\'\n'
        f"        values: '0 {paused_at}x{minutes}'\n"
        "    alert_rule_test:\n"
        f"      - eval_time: {stale_firing}s\n"
        "        alertname: PipelineStale\n"
        "        exp_alerts: []\n"
        f"      - eval_time: {23 * 3600}s\n"
        "        alertname: PipelinePausedLong\n"
        "        exp_alerts: []\n"
        f"      - eval_time: {long_firing}s\n"
        "        alertname: PipelinePausedLong\n"
        "        exp_alerts:\n"
        "          - exp_labels:\n"
        "              severity: warning\n"
        f"              pipeline: {pipeline.name}\n"
        "            exp_annotations:\n"
        f'              summary: "Pipeline {pipeline.name} has been paused for more than a day"\n'
        f'              description: "{pipeline.name} was paused {humanize_duration(long_firing - paused_at)} ago; `taskpipes resume {pipeline.name}` runs it again."\n'
        "\n"
    )


def rule_tests(pipelines: Sequence[Cadence], extra: str = "") -> str:
    """The text of tests/alerts_test.yml; `extra` is the cases of the application's rules,
    YAML items of `tests:`."""
    watched = scheduled(pipelines)
    return (
        GENERATED + "# promtool test rules deploy/prometheus/tests/alerts_test.yml\n"
        "# Every alert has a firing case and a non-firing one. Test time starts at 0 (epoch), so a\n"
        '# timestamp gauge of 0 is "1970", and time() at eval_time 30m is 1800.\n'
        "rule_files:\n"
        "  - ../alerts.yml\n"
        "\n"
        "evaluation_interval: 1m\n"
        "\n"
        "tests:\n"
        + "".join(stale_cases(p) for p in watched)
        + fresh_case(watched[0])
        + paused_cases(watched[0])
        + _fixed("fixed_rule_tests.yml")
        + _then(extra)
    )
