"""``--providers FILE``: the endpoints file is read and checked by the library
(``batchgen.session.endpoints``); its names stay importable from here."""

from batchgen.session.endpoints import (
    DEFAULT_URLS,
    PROTOCOLS,
    EndpointSpec,
    build_router,
    describe,
    from_records,
    load_providers,
    make_provider,
    resolve_keys,
    unserved,
)

__all__ = [
    "DEFAULT_URLS",
    "PROTOCOLS",
    "EndpointSpec",
    "build_router",
    "describe",
    "from_records",
    "load_providers",
    "make_provider",
    "resolve_keys",
    "unserved",
]
