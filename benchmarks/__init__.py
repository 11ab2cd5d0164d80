"""Benchmarks: the gateway against minimal Channels consumers under the same load (not tests)."""
