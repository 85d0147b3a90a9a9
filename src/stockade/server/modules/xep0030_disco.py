"""Service Discovery, XEP-0030: what the server and its accounts support."""

from __future__ import annotations

from collections.abc import Iterable

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import Element
from stockade.server.module import Feature, IQHandler, Module, Registration, Spec, Target
from stockade.server.session import Session

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"


class Disco(Module):
    """disco#info and disco#items for the host and for accounts' bare JIDs."""

    name = "xep0030_disco"
    specs = (Spec("XEP-0030", "Service Discovery", "2.5rc3"),)

    def registrations(self) -> Iterable[Registration]:
        """Info and items on the host, on one's own account and on other accounts."""
        yield Feature(NS_INFO)
        yield Feature(NS_ITEMS)
        everyone = Target.HOST | Target.SELF | Target.ACCOUNT
        yield IQHandler("get", (NS_INFO, "query"), everyone, self.on_info)
        yield IQHandler("get", (NS_ITEMS, "query"), everyone, self.on_items)

    async def on_info(self, iq: Stanza, session: Session) -> Element:
        """XEP-0030 §3.1; a node we do not know is item-not-found (§3.2)."""
        query_in = iq.element.find(NS_INFO, "query")
        if query_in is not None and query_in.get("node"):
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND)
        to = iq.to
        query = Element(NS_INFO, "query")
        if to is None or to.local is not None:
            await self._check_account_visible(iq, session)
            query.sub(NS_INFO, "identity", {"category": "account", "type": "registered"})
            features = self.host.account_features
        else:
            query.sub(NS_INFO, "identity", {"category": "server", "type": "im",
                                            "name": "Stockade"})
            features = self.host.features
        on_account = to is None or to.local is not None
        for identity in self.host.identities:
            if identity.on_account == on_account:
                query.sub(NS_INFO, "identity", {"category": identity.category,
                                                "type": identity.type})
        for var in sorted(set(features) | {NS_INFO}):
            query.sub(NS_INFO, "feature", {"var": var})
        return result_reply(iq, str(to) if to else None, query)

    async def on_items(self, iq: Stanza, session: Session) -> Element:
        """The host lists its components (XEP-0030 §4); an account lists what modules
        with an ``account_disco_items(owner, session, node)`` method give (PEP nodes)."""
        query = Element(NS_ITEMS, "query")
        if iq.to is None or iq.to.local is not None:
            await self._check_account_visible(iq, session)
            query_in = iq.element.find(NS_ITEMS, "query")
            node = query_in.get("node") if query_in is not None else None
            if node:
                query.attrs["node"] = node
            owner = iq.to.local if iq.to is not None and iq.to.local else session.username
            for module in self.host.modules.values():
                provider = getattr(module, "account_disco_items", None)
                if provider is not None:
                    query.children.extend(await provider(owner, session, node or None))
        elif iq.to is not None:
            for domain, component in sorted(self.host.components.items()):
                query.sub(NS_ITEMS, "item", {"jid": domain, "name": component.name})
        return result_reply(iq, str(iq.to) if iq.to else None, query)

    async def _check_account_visible(self, iq: Stanza, session: Session) -> None:
        # SECURITY: an account answers only to itself and to contacts it lets see its
        # presence; everyone else gets the same answer as for a missing account, so accounts
        # cannot be enumerated.
        to = iq.to
        if to is None or to == session.jid.bare:
            return
        assert to.local is not None
        item = await self.host.storage.get_roster_item(to.local, str(session.jid.bare))
        if item is None or item.subscription not in ("from", "both"):
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)


MODULES = (Disco,)
