"""Playbot's benchmarks: each hot path measured beside its floor, in one run.

`python -m bench all [--quick]` runs every figure; `python -m bench <figure>` runs one. Each
figure prints its value, the baseline measured in the same run and their ratio, and all of
them land in `bench/results.json`. See `bench/README.md` for the figures and the machine.
"""
