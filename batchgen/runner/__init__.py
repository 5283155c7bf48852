"""The run stage: one session of jobs → limits → provider → images → runlog.

pool         run_pool: the workers, the stall watchdog
attempt      JobRunner: one job through its attempts (budget gate, gate, provider,
             images, a row per attempt)
tries        a job's attempts as the retry policy counts them, and the backoff
rows         the log row of one attempt
budget_gate  the --max-cost reservation in front of each request
control      what they share: PoolSettings, RowContext, Sink, PoolTally
recovery     what resume recovers from a run directory before it sends anything
signals      SIGINT/SIGTERM → a graceful stop, then a cancel
"""
