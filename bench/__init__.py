"""Benchmarks: what a deploy costs and what the migrations do to live writers (`scripts/bench`).

Every figure is reported against a baseline measured in the same run, as a ratio: these machines
are shared, so absolute seconds are not comparable from one run to the next.
"""
