"""Support for tests and benchmarks: nothing here is used by a run.

``synthetic`` writes large, realistic run logs without sending a request (the analysis and
report benchmarks read a million rows from it)."""
