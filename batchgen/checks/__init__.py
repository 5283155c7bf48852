"""Image checks at ingest: measurements of each saved image, stored beside the log.

    measure.py   decodable, size, blank std-dev, Laplacian variance, dHash — from bytes
    store.py     RUN_DIR/checks/*.parquet: crash-safe part files, newest row per path
    ingest.py    IngestChecker: submit() from the pool, a process pool behind a bounded backlog
    lookup.py    for the report: stored rows, and measure-and-store what has none

The verdicts (thresholds) are batchgen/analyze/images.py's, applied to stored numbers.
"""
