"""Address safety (qwenvl_data/netguard.py) against real loopback servers.

Only 127.0.0.1 and 127.0.0.2 servers started here are ever named; the policy must refuse the second
one before connecting (it records every request it receives).
"""

import importlib.util
import ipaddress
import urllib.error
from pathlib import Path

import pytest

from qwenvl_data import netguard
from qwenvl_data.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("serve_demo_images", ROOT / "scripts" / "serve_demo_images.py")
serve = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve)


@pytest.fixture(scope="module")
def servers():
    with serve.ImageServer("127.0.0.1") as a, serve.ImageServer("127.0.0.2") as b:
        yield a, b


def opener(allow="127.0.0.1", max_bytes=None):
    return netguard.build_opener(netguard.AddressPolicy(netguard.parse_allow(allow), max_bytes))


def test_parse_allow_names_the_bad_entry():
    assert netguard.parse_allow("127.0.0.1, 10.0.0.0/8") == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    with pytest.raises(UsageError, match="'localhost' is not an IP"):
        netguard.parse_allow("127.0.0.1,localhost")


@pytest.mark.parametrize(
    "ip,public",
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("8.8.8.8", True),
        ("2606:4700::1", True),
    ],
)
def test_is_public(ip, public):
    # Pure address arithmetic: no traffic is sent to any of these.
    assert netguard.is_public(ipaddress.ip_address(ip)) is public


def test_allowed_server_is_fetched(servers):
    a, _ = servers
    with opener().open(f"{a.base}/img/x.jpg?w=50&h=40", timeout=5) as r:
        assert r.read()[:2] == b"\xff\xd8"


def test_loopback_refused_without_allow_and_no_packet_sent(servers):
    a, _ = servers
    before = len(a.requests)
    with pytest.raises(urllib.error.URLError, match="refused_address: 127.0.0.1"):
        opener(allow=None).open(f"{a.base}/img/x.jpg", timeout=5)
    assert len(a.requests) == before


def test_redirect_to_unallowed_address_is_refused_before_connecting(servers):
    a, b = servers
    with pytest.raises(urllib.error.URLError, match="refused_address: 127.0.0.2"):
        opener().open(f"{a.base}/redirect?to={b.base}/img/y.jpg", timeout=5)
    assert b.requests == []
    assert a.requests[-1][0] == "/redirect"


def test_redirect_to_allowed_address_is_followed(servers):
    a, b = servers
    with opener("127.0.0.1,127.0.0.2").open(f"{a.base}/redirect?to={b.base}/img/z.jpg", timeout=5) as r:
        assert r.status == 200
    assert b.requests[-1][0] == "/img/z.jpg"
    b.requests.clear()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "data:text/plain,hi"])
def test_other_schemes_refused(url):
    with pytest.raises(urllib.error.URLError, match="bad_scheme"):
        opener().open(url, timeout=5)


def test_redirect_to_file_scheme_refused(servers):
    a, _ = servers
    with pytest.raises(urllib.error.URLError, match="bad_scheme"):
        opener().open(f"{a.base}/redirect?to=file:///etc/passwd", timeout=5)


def test_response_over_max_bytes_is_cut(servers):
    a, _ = servers
    with opener(max_bytes=1000).open(f"{a.base}/img/big.png?w=300&h=300", timeout=5) as r:
        with pytest.raises(urllib.error.URLError, match="too_large"):
            r.read()


def test_install_makes_urlopen_guarded(servers):
    import urllib.request

    a, b = servers
    netguard.install(netguard.AddressPolicy(netguard.parse_allow("127.0.0.1")))
    try:
        with pytest.raises(urllib.error.URLError, match="refused_address"):
            urllib.request.urlopen(f"{b.base}/img/q.jpg", timeout=5)
        assert b.requests == []
    finally:
        urllib.request.install_opener(None)
        netguard._installed.policy = None


def test_host_names_are_checked_by_what_they_resolve_to(servers):
    # 'localhost' is no literal IP: the check must resolve it. Every address it resolves to must be
    # allowed (a name answering one public and one private address is refused), hence ::1 as well.
    a, _ = servers
    url = f"http://localhost:{a.port}/img/h.jpg?w=40&h=30"
    with pytest.raises(urllib.error.URLError, match="refused_address: localhost resolves to"):
        opener(allow=None).open(url, timeout=5)
    with opener("127.0.0.1,::1").open(url, timeout=5) as r:
        assert r.status == 200
