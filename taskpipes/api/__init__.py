"""The read API: every answer comes from precomputed tables by indexed lookups."""

from taskpipes.api.app import create_app

__all__ = ["create_app"]
