"""Address safety for crawling an untrusted URL list.

- Only http and https. `file:`, `ftp:`, `data:` and unknown schemes are refused (`bad_scheme`).
- Every connection resolves the host itself, refuses private, loopback, link-local, multicast,
  reserved and unspecified addresses unless they fall inside `allow` (the `--allow-addresses` ranges),
  and then connects to the very address it checked, so DNS cannot answer differently between the check
  and the connect (rebinding). A refused host never sees a packet (`refused_address`).
- Redirects go through the same opener, so each hop is checked again before it is contacted.
- No proxy handler: proxy environment variables would otherwise route every request to one address
  that the check never sees.
- A response body over `max_bytes` is cut off (`too_large`) instead of filling memory.
- Each request has a deadline (`deadline` seconds for connect + headers + body, on top of the
  per-read `timeout`): a server trickling one byte a second fails with `timeout` instead of hanging.

img2dataset fetches with `urllib.request.urlopen`, which uses the opener installed in its process;
`install(policy)` makes ours that opener (called in each download worker, see pipelines/download.py).
Errors carry their snake_case reason as the message prefix ("refused_address: ..."), which is what
img2dataset records as the sample's error message.
"""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from .errors import UsageError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(urllib.error.URLError):
    """A request the policy does not allow; `reason` starts with a snake_case failure reason."""


def parse_allow(text: str | list[str] | None) -> tuple[Network, ...]:
    """'127.0.0.1,10.2.0.0/16' -> networks; a bad entry is a usage error naming it."""
    if not text:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    nets = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise UsageError(f"--allow-addresses: '{item}' is not an IP address or CIDR range") from None
    return tuple(nets)


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # ::ffff:127.0.0.1 is loopback
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


@dataclass(frozen=True)
class AddressPolicy:
    allow: tuple[Network, ...] = ()  # ranges allowed even though not public
    max_bytes: int | None = 32 * 1024 * 1024  # largest response body read
    timeout: float = 10.0
    deadline: float | None = 60.0  # seconds for one request: connect + headers + body

    def allowed(self, ip_text: str) -> bool:
        ip = ipaddress.ip_address(ip_text.split("%", 1)[0])
        return is_public(ip) or any(ip in net for net in self.allow)

    def resolve(self, host: str, port: int) -> list[tuple]:
        """getaddrinfo results for host, all vetted; raises Refused naming the first bad address."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise Refused(f"dns_error: cannot resolve {host}: {e.strerror or e}") from None
        for info in infos:
            ip_text = info[4][0]
            if not self.allowed(str(ip_text)):
                raise Refused(
                    f"refused_address: {host} resolves to {ip_text}, which is not a public "
                    f"address and not in --allow-addresses"
                )
        return infos


def _vetted_connection(policy: AddressPolicy, address, timeout, source_address=None):
    """socket.create_connection that only ever connects to addresses the policy vetted."""
    host, port = address
    last = None
    for family, type_, proto, _, sockaddr in policy.resolve(host, port):
        sock = socket.socket(family, type_, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            last = e
    raise last or OSError(f"cannot connect to {host}")


class RequestTimeout(Refused):
    """The whole request (connect + headers + body) ran past its deadline."""


class _DeadlineReader(io.RawIOBase):
    """The response's socket stream, each read bounded by the per-read timeout and the request's deadline."""

    def __init__(self, raw, sock, deadline: float, read_timeout: float | None, limit: float):
        self.raw, self.sock, self.deadline, self.read_timeout, self.limit = raw, sock, deadline, read_timeout, limit

    def readable(self):
        return True

    def _late(self):
        return RequestTimeout(f"timeout: request took over its {self.limit:g} s deadline")

    def readinto(self, b):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._late()
        self.sock.settimeout(left if self.read_timeout is None else min(self.read_timeout, left))
        try:
            return self.raw.readinto(b)
        except TimeoutError:
            if self.deadline - time.monotonic() <= 0:
                raise self._late() from None
            raise

    def close(self):
        if not self.closed:
            self.raw.close()  # the socket itself closes with its last stream (urllib relies on that)
        super().close()


class _CappedResponse(http.client.HTTPResponse):
    max_bytes: int | None = None

    def __init__(self, sock, *args, deadline: tuple[float, float | None, float] | None = None, **kwargs):
        super().__init__(sock, *args, **kwargs)
        if deadline is not None:  # headers and body read through the deadline-bounded reader
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, *deadline))

    def read(self, amt=None):
        if amt is not None or self.max_bytes is None:
            return super().read(amt)
        data = super().read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            self.close()
            raise Refused(f"too_large: response body over {self.max_bytes} bytes")
        return data


def _connection_class(base, policy: AddressPolicy):
    response = type("CappedResponse", (_CappedResponse,), {"max_bytes": policy.max_bytes})

    class Guarded(base):
        response_class = response

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if policy.deadline:  # urllib makes one connection per request: the clock starts here
                read_timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
                self.response_class = functools.partial(
                    response, deadline=(time.monotonic() + policy.deadline, read_timeout, policy.deadline)
                )
            # http.client sets this per instance; every socket (and CONNECT tunnel) comes from here.
            default = socket._GLOBAL_DEFAULT_TIMEOUT
            self._create_connection = lambda address, timeout=default, source_address=None: _vetted_connection(
                policy, address, timeout, source_address
            )

    return Guarded


class GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: AddressPolicy):
        super().__init__()
        self._conn = _connection_class(http.client.HTTPConnection, policy)

    def http_open(self, req):
        return self.do_open(self._conn, req)


class GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: AddressPolicy):
        super().__init__()
        self._conn = _connection_class(http.client.HTTPSConnection, policy)

    def https_open(self, req):
        # SNI and certificate checks still use the host name; only the socket goes to the vetted IP.
        return self.do_open(self._conn, req, context=self._context)


class GuardedRedirectHandler(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def http_error_302(self, req, fp, code, msg, headers):
        # urllib answers a redirect to file:/ftp: with an HTTPError of the 3xx code; name it instead.
        target = urljoin(req.full_url, headers.get("location") or headers.get("uri") or "")
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            fp.close()
            raise Refused(f"bad_scheme: redirect from {req.full_url} to a '{scheme}' URL")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


class RefuseOtherSchemes(urllib.request.BaseHandler):
    def unknown_open(self, req):
        raise Refused(f"bad_scheme: only http and https URLs are fetched, not '{req.type}'")


def build_opener(policy: AddressPolicy) -> urllib.request.OpenerDirector:
    """An opener with no file/ftp/data/proxy handlers; http(s) only through vetted connections."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        GuardedHTTPHandler(policy),
        GuardedHTTPSHandler(policy),
        GuardedRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        RefuseOtherSchemes(),
    ):
        opener.add_handler(handler)
    return opener


@dataclass
class _Installed:
    policy: AddressPolicy | None = None
    opener: urllib.request.OpenerDirector | None = field(default=None, repr=False)


_installed = _Installed()


def install(policy: AddressPolicy) -> None:
    """Make urllib.request.urlopen in this process go through the policy (idempotent)."""
    if _installed.policy != policy:
        _installed.opener = build_opener(policy)
        _installed.policy = policy
        urllib.request.install_opener(_installed.opener)
