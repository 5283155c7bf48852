"""The statuses ``batchgen jobs RUN_DIR --status S`` exports, by name: the CLI's parser offers
them without loading export.py, which reads the job states (pyarrow.dataset, pandas)."""

from __future__ import annotations

STATUSES = ("ok", "failed", "pending")  # pending = not ok and not failed
