"""vcard-temp, XEP-0054: each account's vCard, set by itself and answered by the server."""

from __future__ import annotations

from collections.abc import Iterable

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import Element, parse_fragment, serialize
from stockade.server.config import Option, int_range, register_section
from stockade.server.module import Feature, IQHandler, Module, Registration, Spec, Target
from stockade.server.session import Session

NS_VCARD = "vcard-temp"
KEY = "vcard"
SEC = StanzaErrorCondition

register_section("vcard", {
    "max_bytes": Option(int, 64 * 1024, "Largest vCard (XEP-0054) an account may store, "
                        "serialized, in bytes (photos included).",
                        int_range(1024, 8 * 1024 * 1024)),
})


class VCard(Module):
    """XEP-0054 §3.1 (own vCard), §3.2 (update), §3.3 (another user's vCard)."""

    name = "xep0054_vcard"
    specs = (Spec("XEP-0054", "vcard-temp", "1.2"),)
    depends = ("xep0030_disco",)
    config_section = "vcard"

    def registrations(self) -> Iterable[Registration]:
        """Anyone may read an account's vCard; only the account may change it."""
        yield Feature(NS_VCARD)
        yield IQHandler("get", (NS_VCARD, "vCard"), Target.SELF | Target.ACCOUNT, self.on_get)
        yield IQHandler("set", (NS_VCARD, "vCard"), Target.SELF, self.on_set)
        yield IQHandler("set", (NS_VCARD, "vCard"), Target.ACCOUNT | Target.HOST,
                        self.on_set_other)

    async def on_get(self, iq: Stanza, session: Session) -> Element:
        """§3.1/§3.3: the stored vCard, or an empty ``<vCard/>`` (also for an account that
        does not exist, so the answer tells nobody which accounts exist)."""
        owner = iq.to.local if iq.to is not None and iq.to.local else session.username
        stored = await self.host.storage.get_data(owner, NS_VCARD, KEY)
        vcard = parse_fragment(stored) if stored is not None else Element(NS_VCARD, "vCard")
        # RFC 6120 §8.1.2.1: the answer comes from whom the request was addressed to.
        return result_reply(iq, str(iq.to) if iq.to is not None else None, vcard)

    async def on_set(self, iq: Stanza, session: Session) -> Element:
        """§3.2: replace the account's vCard (an empty one clears it)."""
        vcard = iq.element.find(NS_VCARD, "vCard")
        assert vcard is not None
        text = serialize(Element(NS_VCARD, "vCard", {}, vcard.children))
        limit = self.options["max_bytes"]
        if len(text.encode()) > limit:
            raise StanzaError(SEC.NOT_ACCEPTABLE, f"vCard larger than {limit} bytes "
                              "(make the photo smaller)")
        if not list(vcard.elements()):
            await self.host.storage.delete_data(session.username, NS_VCARD, KEY)
        else:
            await self.host.storage.put_data(session.username, NS_VCARD, KEY, text)
        return result_reply(iq, None)

    async def on_set_other(self, iq: Stanza, session: Session) -> Element:
        """§3.2: a user may only publish its own vCard."""
        raise StanzaError(SEC.FORBIDDEN, "you can only change your own vCard")


MODULES = (VCard,)
