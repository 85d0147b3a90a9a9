"""The strict HTTP/1.1 request-head parser, responses and the route table (core.http)."""

from __future__ import annotations

import pytest

from stockade.core.http import (
    HTTPError,
    HTTPLimits,
    Request,
    RequestParser,
    Response,
    Routes,
    encode_response,
    error_response,
)

GET = b"GET /.well-known/host-meta HTTP/1.1\r\nHost: example.org\r\n"


def parse(head: bytes, limits: HTTPLimits | None = None) -> Request:
    request = RequestParser(limits).feed(head)
    assert request is not None
    return request


def refused(head: bytes, limits: HTTPLimits | None = None) -> int:
    with pytest.raises(HTTPError) as info:
        RequestParser(limits).feed(head)
    return info.value.status


def test_parses_a_request_head_and_keeps_what_follows() -> None:
    parser = RequestParser()
    assert parser.feed(GET[:10]) is None
    request = parser.feed(GET[10:] + b"Accept: */*\r\nX-Two: a, b\r\n\r\nNEXT")
    assert request is not None
    assert (request.method, request.path, request.version) == \
        ("GET", "/.well-known/host-meta", "HTTP/1.1")
    assert request.header("accept") == "*/*"
    assert request.tokens("x-two") == ["a", "b"]
    assert request.keep_alive
    assert parser.take_rest() == b"NEXT"
    assert parser.take_rest() == b""


def test_byte_by_byte_gives_the_same_request() -> None:
    parser = RequestParser()
    results = [parser.feed(bytes([b])) for b in GET + b"\r\n"]
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] == parse(GET + b"\r\n")


def test_query_is_not_part_of_the_path() -> None:
    request = parse(b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (request.path, request.target) == ("/a/b", "/a/b?x=1")


def test_connection_close_and_http_1_0_end_the_connection() -> None:
    assert not parse(GET + b"Connection: keep-alive, close\r\n\r\n").keep_alive
    assert not parse(b"GET / HTTP/1.0\r\n\r\n").keep_alive  # 1.0 needs no Host


@pytest.mark.parametrize(("head", "status"), [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host (RFC 9112 §3.2)
    (GET + b"Host: again\r\n\r\n", 400),  # two Hosts
    (GET + b" folded: value\r\n\r\n", 400),  # obs-fold
    (GET + b"Bad : space\r\n\r\n", 400),  # whitespace before the colon
    (GET + b"No-colon\r\n\r\n", 400),
    (GET + b"X: a\x00b\r\n\r\n", 400),  # NUL in a value
    (GET + b"X: a\nY: b\r\n\r\n", 400),  # bare LF
    (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),  # two spaces
    (b"GET http://evil/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),  # absolute-form
    (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    (b"GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400),
    (GET + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),  # smuggling
    (GET + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (GET + b"Transfer-Encoding: chunked\r\n\r\n", 411),  # chunked not supported
    (GET + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
    (GET + b"Content-Length: -1\r\n\r\n", 400),
    (GET + b"Content-Length: 1e3\r\n\r\n", 400),
    (GET + "Content-Length: ٣\r\n\r\n".encode(), 400),  # a non-ASCII digit
])
def test_refuses_ambiguous_or_malformed_heads(head: bytes, status: int) -> None:
    assert refused(head) == status


def test_content_length_is_read() -> None:
    assert parse(GET + b"Content-Length: 42\r\n\r\n").content_length == 42


def test_head_size_limit_is_431_even_before_the_head_ends() -> None:
    limits = HTTPLimits(max_head_bytes=200)
    big = GET + b"X: " + b"a" * 200 + b"\r\n"
    assert refused(big, limits) == 431  # incomplete, already too big
    assert refused(big + b"\r\n", limits) == 431
    assert parse(GET + b"X: " + b"a" * 100 + b"\r\n\r\n", limits).header("x") == "a" * 100


def test_long_target_is_414() -> None:
    limits = HTTPLimits(max_target_bytes=100)
    long_line = b"GET /" + b"a" * 200
    assert refused(long_line, limits) == 414  # no line end yet
    assert refused(long_line + b" HTTP/1.1\r\nHost: h\r\n\r\n", limits) == 414
    assert refused(b"GET /" + b"a" * 120 + b" HTTP/1.1\r\nHost: h\r\n\r\n", limits) == 414


def test_header_count_limit_is_431() -> None:
    limits = HTTPLimits(max_headers=3)
    assert parse(GET + b"A: 1\r\nB: 2\r\n\r\n", limits).header("b") == "2"
    assert refused(GET + b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits) == 431


def test_header_accessors_refuse_to_choose_between_duplicates() -> None:
    request = parse(GET + b"Origin: a\r\nOrigin: b\r\n\r\n")
    assert request.header("origin") is None
    assert request.count("origin") == 2
    assert request.header("missing") is None


def test_encode_response_has_length_date_and_close() -> None:
    data = encode_response(Response(200, (("Content-Type", "text/plain"),), b"hi"),
                           now=0.0, close=True)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"Date: Thu, 01 Jan 1970 00:00:00 GMT" in lines
    assert b"Content-Length: 2" in lines
    assert b"Connection: close" in lines
    assert body == b"hi"
    assert encode_response(Response(200, (), b"hi"), now=0.0, close=False,
                           head_only=True).endswith(b"Content-Length: 2\r\n\r\n")


def test_switching_protocols_has_no_content_length() -> None:
    data = encode_response(Response(101, (("Upgrade", "websocket"),)), now=0.0, close=False)
    assert b"Content-Length" not in data
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


def test_handler_headers_cannot_inject_lines() -> None:
    with pytest.raises(ValueError, match="injection"):
        encode_response(Response(200, (("X", "a\r\nSet-Cookie: x"),)), now=0.0, close=True)


def test_error_response_does_not_echo_the_request() -> None:
    response = error_response(HTTPError(404, "secret detail /path"))
    assert response.status == 404
    assert response.body == b"404 Not Found\n"


def test_routes_resolve_404_and_405() -> None:
    routes: Routes[str] = Routes()
    routes.add("GET", "/a", "get-a")
    routes.add("PUT", "/a", "put-a")
    assert routes.resolve(parse(b"GET /a?q HTTP/1.1\r\nHost: h\r\n\r\n")) == "get-a"
    with pytest.raises(HTTPError) as info:
        routes.resolve(parse(b"POST /a HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert info.value.status == 405
    assert info.value.headers == (("Allow", "GET, HEAD, PUT"),)
    assert routes.resolve(parse(b"HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n")) == "get-a"
    with pytest.raises(HTTPError) as info:
        routes.resolve(parse(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert info.value.status == 404
    with pytest.raises(ValueError, match="twice"):
        routes.add("GET", "/a", "again")
