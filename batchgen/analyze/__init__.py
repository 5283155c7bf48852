"""Figures from a run directory: the log's attempts, run.json and the saved images, as the
report's typed sections (``batchgen.analyze.model``; ``batchgen.reports`` renders them).

analyze_run(run_dir, *, image_checks=True, thresholds=, price_lookup=, check_config=) -> RunReport
check_images(run_dir, config=CheckConfig()) -> ImageChecks
Thresholds(latency_p95_s=, success_rate=, cost_per_image_usd=)
rate_run(*, latency_p95_s, success_rate, cost_per_image_usd, thresholds=, baseline=)
    -> {name: Rating}
Recommendation(kind, message, evidence): the report's Advice
"""

from batchgen.analyze.images import CheckConfig, check_images
from batchgen.analyze.ratings import DEFAULT_THRESHOLDS, Thresholds, rate_run
from batchgen.analyze.recommend import Recommendation
from batchgen.analyze.run import REPORT_VERSION, analyze_run

__all__ = [
    "DEFAULT_THRESHOLDS",
    "REPORT_VERSION",
    "CheckConfig",
    "Recommendation",
    "Thresholds",
    "analyze_run",
    "check_images",
    "rate_run",
]
