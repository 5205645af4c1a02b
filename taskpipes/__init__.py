"""taskpipes: background task pipelines for web applications."""
