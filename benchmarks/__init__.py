"""`python -m benchmarks`: scenarios B1–B12 of ../shared/benchmarks.md as same-run ratios.

Every scenario measures our code and its baseline in the same invocation, interleaved (A B A B …),
with the measured process pinned to core 0 and the load generator / sink pinned to core 1, and
reports the median of the rounds. See `benchmarks/README.md` for the layout and how to read it.
"""
