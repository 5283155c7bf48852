"""The network under an endpoint: proxy variables, name resolution, a TCP connection (its time
is the round trip), and for https the TLS handshake with the certificate checked the way the run
checks it (the system's trust store, or ``SSL_CERT_FILE``). Each step one :class:`Check`; a
failed step ends the section's network checks (the next one cannot succeed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from batchgen.doctor.model import Check, Section, fail, ok, unknown
from batchgen.errors import ErrorClass, redact

NETWORK_FIX = ErrorClass.NETWORK.remedy
_PROXY_VARS = ("https", "http", "all")

# OpenSSL's verify codes (x509_vfy.h) for the certificate problems people meet
_SELF_SIGNED = {18, 19}
_EXPIRED = 10
_NOT_YET_VALID = 9
_HOSTNAME = 62
_NO_ISSUER = {2, 20, 21}


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int
    tls: bool

    @classmethod
    def of(cls, base_url: str) -> Address:
        parts = urlsplit(base_url)
        tls = parts.scheme == "https"
        return cls(parts.hostname or "", parts.port or (443 if tls else 80), tls)


def proxy_check(base_url: str) -> Check | None:
    """Proxy variables that would apply to this URL, said: batchgen's HTTP client does not read
    them (it connects directly), which surprises whoever set them for a reason."""
    addr = Address.of(base_url)
    proxies = urllib.request.getproxies()
    scheme = "https" if addr.tls else "http"
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return None
    if urllib.request.proxy_bypass(addr.host):
        return ok("proxy", f"{scheme}_proxy is set; {addr.host} is in no_proxy: connected directly")
    return unknown(
        "proxy",
        f"{scheme}_proxy={redact(proxy)} is set, but batchgen connects directly (its HTTP "
        "client does not read proxy variables)",
        "If this network only reaches the provider through that proxy, run batchgen where it "
        "connects directly or through a transparent gateway (--base-url)",
    )


async def network_checks(section: Section, base_url: str, timeout: float = 5.0) -> bool:
    """Add the resolution, connection and TLS lines; True when the endpoint is reachable."""
    addr = Address.of(base_url)
    if (proxy := proxy_check(base_url)) is not None:
        section.add(proxy)
    infos = await _resolve(section, addr, timeout)
    if infos is None:
        return False
    family, _, _, _, sockaddr = infos[0]
    ip = str(sockaddr[0])
    started = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(ip, addr.port, family=family), timeout
        )
    except TimeoutError:
        section.add(
            fail(
                "connect",
                f"no answer from {ip}:{addr.port} in {timeout:g} s "
                "(a firewall dropping packets, or a wrong address)",
                NETWORK_FIX,
                ErrorClass.NETWORK,
            )
        )
        return False
    except OSError as exc:
        section.add(_connect_failed(addr, ip, exc))
        return False
    rtt = time.perf_counter() - started
    writer.close()
    section.add(ok("connect", f"{ip}:{addr.port} in {rtt * 1000:.0f} ms (one round trip)"))
    if addr.tls:
        return await _tls_check(section, addr, ip, timeout)
    return True


async def _resolve(section: Section, addr: Address, timeout: float) -> list[Any] | None:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM), timeout
        )
    except (OSError, TimeoutError) as exc:
        why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
        section.add(
            fail(
                "name resolution",
                f"{addr.host} did not resolve ({why})",
                "Check the host name in the base URL (a typo?), then this machine's DNS and "
                "network",
                ErrorClass.NETWORK,
            )
        )
        return None
    ips = sorted({str(info[4][0]) for info in infos})
    shown = ", ".join(ips[:3]) + (f" (+{len(ips) - 3})" if len(ips) > 3 else "")
    section.add(ok("name resolution", f"{addr.host} → {shown}"))
    return infos


def _connect_failed(addr: Address, ip: str, exc: OSError) -> Check:
    if isinstance(exc, ConnectionRefusedError):
        seen = f"connection refused at {ip}:{addr.port}: nothing listens on that port"
        fix = "Check the port in the base URL, or start the server that should listen there"
    else:
        seen = f"could not connect to {ip}:{addr.port}: {type(exc).__name__}: {exc}"
        fix = NETWORK_FIX
    return fail("connect", seen, fix, ErrorClass.NETWORK)


async def _tls_check(section: Section, addr: Address, ip: str, timeout: float) -> bool:
    ctx = ssl.create_default_context()  # what aiohttp uses: system store, SSL_CERT_FILE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(ip, addr.port, ssl=ctx, server_hostname=addr.host), timeout
        )
    except ssl.SSLCertVerificationError as exc:
        section.add(_certificate_failed(addr, exc))
        return False
    except (OSError, TimeoutError) as exc:
        section.add(
            fail(
                "TLS",
                f"handshake with {addr.host}:{addr.port} failed: {type(exc).__name__}: {exc}",
                "Check that the port speaks https (use http:// for a plain server)",
                ErrorClass.NETWORK,
            )
        )
        return False
    sslobj = writer.get_extra_info("ssl_object")
    cert = sslobj.getpeercert() if sslobj is not None else None
    version = sslobj.version() if sslobj is not None else "?"
    writer.close()
    seen = f"{version}, certificate valid for {addr.host}"
    if cert and "notAfter" in cert:
        expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), dt.UTC)
        days = (expires - dt.datetime.now(dt.UTC)).days
        seen += f" until {expires:%Y-%m-%d} ({days} days)"
        if days < 14:
            section.add(
                unknown(
                    "TLS",
                    seen + ": expires soon",
                    "Tell the server's owner to renew its certificate",
                )
            )
            return True
    section.add(ok("TLS", seen))
    return True


def _certificate_failed(addr: Address, exc: ssl.SSLCertVerificationError) -> Check:
    code = getattr(exc, "verify_code", None)
    message = getattr(exc, "verify_message", None) or str(exc)
    where = f"{addr.host}:{addr.port}"
    if code in _SELF_SIGNED:
        seen = f"{where}: the certificate is self-signed ({message}), so it proves nothing"
        fix = (
            "Give the server a certificate from a public CA, or trust its own: "
            "SSL_CERT_FILE=/path/to/its-ca.pem (http:// for a local test server)"
        )
    elif code == _EXPIRED:
        seen = f"{where}: the certificate has expired ({message})"
        fix = "Tell the server's owner to renew its certificate (or check this machine's clock)"
    elif code == _NOT_YET_VALID:
        seen = f"{where}: the certificate is not valid yet ({message})"
        fix = "Check this machine's clock (date -u), then the server's certificate"
    elif code == _HOSTNAME:
        seen = f"{where}: the certificate is for another name ({message})"
        fix = "Use the host name the certificate names in the base URL"
    elif code in _NO_ISSUER:
        seen = f"{where}: the certificate's issuer is not trusted here ({message})"
        fix = (
            "A private CA or an intercepting proxy signed it: point SSL_CERT_FILE at that "
            "CA's certificate, or install it into the system store"
        )
    else:
        seen = f"{where}: the certificate was refused ({message})"
        fix = "Check the server's certificate chain (openssl s_client -connect HOST:443)"
    return fail("TLS", seen, fix, ErrorClass.NETWORK)
