"""Declarations: pipelines, stages, schedules, retries and settings, as data. No I/O."""
