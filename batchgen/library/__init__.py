"""Reuse across runs: what earlier runs produced, found by the request's fingerprint.

``entries.py`` reads a run directory's reusable answers (ok rows, their images and best
score); ``index.py`` is the content-addressed library (SQLite index + image files);
``reuse.py`` takes a stored answer instead of a request inside a session."""
