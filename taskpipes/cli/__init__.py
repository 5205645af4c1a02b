"""The `taskpipes` command line."""
