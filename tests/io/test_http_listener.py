"""The [http] section's checks and the WebSocket URL host-meta advertises (io.http)."""

from __future__ import annotations

import pytest

from stockade.core.errors import ConfigError
from stockade.io.http import HTTPListener
from stockade.server.config import check_config


def listener(*, tls: bool = False, public_url: str = "", host: str = "127.0.0.1",
             port: int = 5280) -> HTTPListener:
    info = HTTPListener(tls=tls, websocket_path="/xmpp-websocket", allowed_origins=[],
                        public_url=public_url, domain="example.org")
    info.bound((host, port))
    return info


def test_url_from_the_listener_never_from_the_request() -> None:
    assert listener().websocket_url == "ws://127.0.0.1:5280/xmpp-websocket"
    assert listener(host="::1").websocket_url == "ws://[::1]:5280/xmpp-websocket"
    # Over TLS the certificate's name, the hosted domain, is the one a client can verify.
    assert listener(tls=True, port=5443).websocket_url == \
        "wss://example.org:5443/xmpp-websocket"


@pytest.mark.parametrize(("public_url", "expected"), [
    ("https://chat.example.org", "wss://chat.example.org/xmpp-websocket"),
    ("https://chat.example.org/", "wss://chat.example.org/xmpp-websocket"),
    ("https://example.org:8443/xmpp", "wss://example.org:8443/xmpp/xmpp-websocket"),
    ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/xmpp-websocket"),
])
def test_url_from_public_url(public_url: str, expected: str) -> None:
    assert listener(tls=True, public_url=public_url).websocket_url == expected


def test_loopback_is_taken_from_the_bound_address() -> None:
    assert listener().is_loopback and listener(host="::1").is_loopback
    assert not listener(host="192.0.2.1").is_loopback
    # Empty allowed_origins: any origin on loopback, none elsewhere.
    assert listener().origin_allowed("https://anywhere.example")
    assert not listener(host="192.0.2.1").origin_allowed("https://anywhere.example")


@pytest.mark.parametrize("address", ["0.0.0.0:5280", "[::]:5280", "192.0.2.1:5280",
                                     "example.org:5280"])
def test_plain_http_must_be_loopback(address: str) -> None:
    with pytest.raises(ConfigError, match=r"http\.listen: .* not a loopback address"):
        check_config({"http": {"listen": [address]}})


def test_loopback_and_tls_addresses_are_accepted() -> None:
    values = check_config({"http": {"listen": ["127.0.0.1:5280", "[::1]:5280",
                                               "localhost:5280"],
                                    "tls_listen": ["0.0.0.0:5443"]}})
    assert values["http"]["tls_listen"] == ["0.0.0.0:5443"]


@pytest.mark.parametrize(("key", "value"), [
    ("websocket_path", "xmpp-websocket"),
    ("websocket_path", "/a b"),
    ("allowed_origins", ["chat.example.org"]),
    ("allowed_origins", ["https://chat.example.org/path"]),
    ("public_url", "wss://chat.example.org"),
    ("public_url", "https://"),
    ("idle_timeout_s", 0),
])
def test_bad_http_options_are_refused(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"http\.{key}"):
        check_config({"http": {key: value}})
