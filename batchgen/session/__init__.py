"""The library's session layer: one place that owns a run directory's lifecycle — the lock,
recovery of what a crash left, the job index, the settings (``batchgen.config.RunConfig``), the
pool or the Batch API, the session record in run.json, signals, the disk watch and how the
session ended. ``batchgen run``/``resume``/``collect``, the Python API (``batchgen.api``) and
the regeneration rounds all go through here.

    prepare    validate and quote the job file, the price table and the budget
    builder    one session's preparation, for every kind of session: connect, prices,
               check and quote, budget (prepare_session); confirm; the SessionPlan
    connect    where requests go (one endpoint, a providers file) and with which key
    execute    one live session: writer, signals, disk watch, the pool, how it ended
    start      a new run (``run``)             resume   the rest of a run (``resume``)
    batchmode  the Batch API mode              regenerate  the rounds of the quality loop
    observer   what the session tells the caller: nothing unless asked (the CLI prints)
    outcome    how a session (SessionResult) and a command (Outcome, exit codes) ended

Importing this package loads nothing heavy; its modules import what they need.
"""
