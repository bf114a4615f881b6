"""Benchmarks: the relay against the seed design, side by side in one run (`python -m bench.run`)."""
