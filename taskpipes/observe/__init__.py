"""What operators see: the Prometheus metrics and `taskpipes status` reports."""
