"""Benchmark for the embedding-to-text decoders: metrics, latency, the `python -m eval` command, charts."""
