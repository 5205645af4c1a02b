"""The runtime: actors built from declarations, ticks, stages, catch-up, housekeeping,
middleware, the broker and the in-process runner."""
