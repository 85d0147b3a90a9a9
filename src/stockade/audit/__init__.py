"""``stockade audit``: probes of any XMPP server's transport security, the runner that
drives them over every discovered endpoint, and the terminal report.

The probes (``tls``, ``certificate``, ``stream``) each expose
``async def probe(endpoint, *, timeout_s) -> list[Finding]``; grading and the file
renderers are sans-I/O, in :mod:`stockade.core.audit`.
"""
