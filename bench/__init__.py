"""``make bench`` (``python -m bench``): batchgen against the simulator in its own process.

Every figure is a ratio measured in the same run (absolute times are noisy on a shared
machine); each is printed beside its target and written to ``bench/results.json``.
"""
