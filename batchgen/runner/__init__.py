"""The run stage: the worker pool (``pool``), one job's attempts (``attempt``), the budget gate
in front of each request (``budget_gate``), what they share (``control``), and what resume
recovers from a run directory before it sends anything (``recovery``)."""
