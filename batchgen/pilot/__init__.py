"""The pilot (``batchgen pilot JOBS``): a seeded, stratified sample of a job file run under
each candidate setting, scored, and the cheapest setting that is good enough named; then
``batchgen run JOBS --from-pilot DIR`` runs the rest with it, reusing the pilot's images.

settings.py  --try and the default ladders; sample.py  the sample; stats.py  Wilson and
bootstrap intervals and the choice; plan.py  pilot.json (what the pilot is); figures.py  the
per-setting table from the log and the scores; run.py  the pilot's and the apply's
sessions; carry.py  the pilot's verdicts go with the images an apply takes; text.py  the
table as text.
"""
