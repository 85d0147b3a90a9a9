import time
import pytest
from rawxmpp import running_server, stream_header, plain_auth, PROCEED, ACCOUNTS

CASES = {
 "inj_decl": stream_header() ,
 "inj_nodecl": stream_header(declaration=False),
 "inj_elems": b"",
}

@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(CASES))
async def test_inj(tmp_path, ca, case):
    async with running_server(tmp_path, ca) as h:
        c = await h.connect()
        await c.open_stream()
        await c.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + CASES[case] + plain_auth("alice", ACCOUNTS["alice"]) + b"<message to='bob@localhost'><body>inj</body></message>")
        print(case, await c.collect(1))

PRE = {
 "utf8": b"<message><body>\xc3\x28</body></message>",
 "ff": b"<message><body>\xff</body></message>",
 "ctrl": b"<message><body>\x01</body></message>",
 "nul": b"<message><body>\x00</body></message>",
 "entdecl": b"<!ENTITY x 'y'>",
 "pi": b"<?foo bar?>",
 "pi_in": b"<message><?foo bar?></message>",
 "comment": b"<!-- hi -->",
 "comment_in": b"<message><!-- hi --></message>",
 "undef": b"<message><body>&foo;</body></message>",
 "cdata": b"<message><body><![CDATA[x]]></body></message>",
 "lt": b"<message><body>a</body></message>",
 "xmldecl2": b"<?xml version='1.0'?>",
}
@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(PRE))
async def test_pre(tmp_path, ca, case):
    async with running_server(tmp_path, ca) as h:
        c = await h.connect()
        await c.open_stream()
        await c.send(PRE[case])
        print(case, await c.collect(0.5))
        c = await h.login("alice")
        await c.send(PRE[case])
        print(case, await c.collect(0.5))

HDR = {
 "doctype": b"<!DOCTYPE stream [<!ENTITY x \"y\">]>" + stream_header(declaration=False),
 "doctype2": b"<?xml version='1.0'?><!DOCTYPE stream:stream>" + stream_header(declaration=False),
 "wrongns": stream_header(stream_ns="urn:wrong"),
 "server": stream_header(xmlns="jabber:server"),
 "nons": stream_header(xmlns=None),
 "host": stream_header(to="example.net"),
 "noto": stream_header(to=None),
 "nover": stream_header(version=None),
 "v2": stream_header(version="2.0"),
 "latin1": b"<?xml version='1.0' encoding='ISO-8859-1'?>" + stream_header(declaration=False),
 "prefix": b"<?xml version='1.0'?><s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
 "utf8hdr": b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost\xff' version='1.0'>",
}
@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(HDR))
async def test_hdr(tmp_path, ca, case):
    async with running_server(tmp_path, ca) as h:
        c = await h.connect()
        await c.send(HDR[case])
        print(case, await c.collect(0.5))
