"""The virtual-time event loop now lives in the library's test support
(``batchgen.testing.vtime``); this name stays for the tests that import it from here."""

from batchgen.testing.vtime import VirtualClock, VirtualTimeLoop, run_virtual

__all__ = ["VirtualClock", "VirtualTimeLoop", "run_virtual"]
