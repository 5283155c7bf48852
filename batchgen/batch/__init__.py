"""``--via batch``: a job file through the provider's Batch API (half price, within 24 h).

state.py    what was submitted (state/batches.json), recorded before every next step
api.py      the Files and Batch APIs over aiohttp (errors in the one taxonomy); the
            BatchBackend Protocol, the seam every stage below goes through
gemini.py   Gemini's Batch and Files APIs behind that seam (geminishapes.py: the shapes)
submit.py   jobs → input files within the limits → uploads → batches; crash reconciliation
follow.py   polling with backoff, progress, the --deadline cut-over, cancel
collect.py  output and error files streamed line by line → images and log rows
session.py  one batch session: the writer, signals, submit, follow, collect
"""
