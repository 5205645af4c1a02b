"""The kit's HTTP pieces, as a FastAPI router any application includes: health, runs, the
pipeline pages and the metrics."""
