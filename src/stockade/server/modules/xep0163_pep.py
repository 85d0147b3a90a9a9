"""Personal Eventing Protocol, XEP-0163: a pubsub service (the XEP-0060 subset PEP needs,
with XEP-0223 publish-options) on every account's bare JID.

The rules (request parsing, node configuration, publish-options preconditions, access
decisions, notification payloads) are the sans-I/O ``stockade.core.pubsub``; this module
loads and stores nodes and items, and moves the stanzas. Notifications go to the owner's
resources and to contacts the node's access model allows, each only if its client asked
for the node with ``<node>+notify`` in verified XEP-0115 caps (``xep0115_caps``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from stockade.core.errors import StanzaErrorCondition
from stockade.core.jid import JID
from stockade.core.pubsub import errors as pserr
from stockade.core.pubsub.access import OWNER, Requester, check_access, check_owner, may_access
from stockade.core.pubsub.errors import NS_PUBSUB, NS_PUBSUB_OWNER, PubsubError
from stockade.core.pubsub.events import (
    items_event,
    items_result,
    node_event,
    notification,
    owner_result,
    payload_from_text,
    payload_to_text,
    publish_result,
    retract_event,
)
from stockade.core.pubsub.node_config import (
    DEFAULT_CONFIG,
    AccessModel,
    NodeConfig,
    SendLastItem,
    config_form,
    configure,
    from_json,
    publish_options,
    to_json,
)
from stockade.core.pubsub.requests import (
    ConfigureGet,
    ConfigureSet,
    Create,
    DefaultGet,
    Delete,
    Items,
    Publish,
    Purge,
    Request,
    Retract,
    parse_request,
)
from stockade.core.stanza import Stanza, result_reply
from stockade.core.xml import Element
from stockade.server.config import Option, int_range, register_section
from stockade.server.module import (
    AccountFeature,
    Feature,
    Hook,
    Identity,
    IQHandler,
    Module,
    Registration,
    Spec,
    Stage,
    StanzaEvent,
    Target,
)
from stockade.server.modules.xep0030_disco import NS_ITEMS
from stockade.server.modules.xep0115_caps import Caps
from stockade.server.modules.xep0160_offline import delay_stamp
from stockade.server.session import Session
from stockade.storage.pubsub import (
    PubsubItem,
    PubsubLimits,
    PubsubNode,
    PubsubNodeLimit,
    PubsubNodeNotFound,
    PubsubQuotaExceeded,
)

if TYPE_CHECKING:
    from stockade.server.host import Host

log = logging.getLogger("stockade.pep")
SEC = StanzaErrorCondition
_SUBSCRIBED = ("from", "both")  # the contact receives the owner's presence
_SEES = ("to", "both")  # the user receives the contact's presence

register_section("pep", {
    "enabled": Option(bool, True, "Personal Eventing (XEP-0163): a pubsub service on each "
                      "account (avatars, OMEMO keys, bookmarks, nicknames)."),
    "max_nodes_per_account": Option(int, 256, "PEP nodes one account may create.",
                                    int_range(1, 100_000)),
    "max_items_per_node": Option(int, 256, "Items a PEP node keeps at most; also what "
                                 "pubsub#max_items \"max\" means.", int_range(1, 100_000)),
    "max_item_bytes": Option(int, 131_072, "Largest item payload accepted, in bytes of XML "
                             "(larger: not-acceptable, payload-too-big).",
                             int_range(256, 16 * 1024 * 1024)),
    "max_bytes_per_account": Option(int, 16 * 1024 * 1024, "Payload characters all of an "
                                    "account's PEP items may take together (beyond: "
                                    "resource-constraint).", int_range(1024, 1 << 34)),
})

#: XEP-0060 §10 features this service offers (vars are NS_PUBSUB + "#" + name).
FEATURES = ("access-open", "access-presence", "access-roster", "access-whitelist",
            "auto-create", "auto-subscribe", "config-node", "config-node-max",
            "create-and-configure", "create-nodes", "delete-items", "delete-nodes",
            "filtered-notifications", "item-ids", "last-published", "multi-items",
            "persistent-items", "presence-notifications", "publish", "publish-options",
            "purge-nodes", "retract-items", "retrieve-default", "retrieve-items")


class PEP(Module):
    """A virtual pubsub service per account (XEP-0163)."""

    name = "xep0163_pep"
    depends = ("xep0030_disco", "rfc6121_roster", "rfc6121_presence", "xep0115_caps")
    config_section = "pep"
    specs = (
        Spec("XEP-0060", "Publish-Subscribe", "1.24.1", "partial",
             "the PEP subset: publish (auto-create, publish-options), retract, items, "
             "create, configure, default, delete, purge; no explicit subscriptions or "
             "affiliations"),
        Spec("XEP-0163", "Personal Eventing Protocol", "1.2.2"),
        Spec("XEP-0223", "Persistent Storage of Private Data via PubSub", "1.1.1"),
        Spec("XEP-0084", "User Avatar", "1.1.4", notes="server side: PEP data and metadata "
             "nodes"),
        Spec("XEP-0172", "User Nickname", "1.1", notes="server side: PEP nick node"),
        Spec("XEP-0384", "OMEMO Encryption", "0.8.3", notes="server side: PEP device lists "
             "and bundles (legacy and urn:xmpp:omemo:2)"),
        Spec("XEP-0402", "PEP Native Bookmarks", "1.2.0", notes="server side: whitelist "
             "node with max_items max"),
    )

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        caps = host.modules["xep0115_caps"]
        assert isinstance(caps, Caps)
        self.caps = caps
        caps.add_listener(self.on_interest)

    def registrations(self) -> Iterable[Registration]:
        """PEP on own and other accounts; identities and features on accounts and on the
        server (XEP-0223 §5 looks for them on the server)."""
        yield Identity("pubsub", "pep", on_account=True)
        yield Identity("pubsub", "pep")
        yield AccountFeature(NS_PUBSUB)
        for feature in FEATURES:
            yield AccountFeature(f"{NS_PUBSUB}#{feature}")
        yield Feature(f"{NS_PUBSUB}#publish-options")
        targets = Target.SELF | Target.ACCOUNT
        for type_ in ("get", "set"):
            yield IQHandler(type_, (NS_PUBSUB, "pubsub"), targets, self.on_pubsub)
            yield IQHandler(type_, (NS_PUBSUB_OWNER, "pubsub"), targets, self.on_pubsub)
        # Late, so other modules' presence hooks have run before it routes subscriptions.
        yield Hook(Stage.SENT, frozenset({"presence"}), self.on_presence_sent, order=95)

    # ------------------------------------------------------------------ limits
    @property
    def _cap(self) -> int:
        return int(self.options["max_items_per_node"])

    def _limits(self, config: NodeConfig) -> PubsubLimits:
        return PubsubLimits(config.item_limit(self._cap),
                            int(self.options["max_nodes_per_account"]),
                            int(self.options["max_bytes_per_account"]))

    # ------------------------------------------------------------------ IQ entry
    async def on_pubsub(self, iq: Stanza, session: Session) -> Element | None:
        """Any ``<pubsub/>`` or ``<pubsub xmlns='...#owner'/>`` IQ to a bare JID here."""
        owner = iq.to.local if iq.to is not None and iq.to.local else session.username
        payload = next(iq.element.elements())
        # A PubsubError is a StanzaError carrying its pubsub#errors condition: the router
        # answers it like any other (error_reply, 'from' for a request without 'to').
        request = parse_request(iq.type, payload)
        requester = await self._requester(owner, session)
        child = await self._handle(request, owner, requester, session)
        return result_reply(iq, str(iq.to) if iq.to is not None else None, child)

    async def _requester(self, owner: str, session: Session) -> Requester:
        if owner == session.username:
            return OWNER
        item = await self.host.storage.get_roster_item(owner, str(session.jid.bare))
        if item is None:
            return Requester(is_owner=False)
        return Requester(False, item.subscription, item.groups)

    async def _handle(self, request: Request, owner: str, requester: Requester,
                      session: Session) -> Element | None:
        if isinstance(request, Items):
            return await self._items(request, owner, requester)
        check_owner(requester)  # everything else is the owner's (XEP-0163 §2.2)
        if isinstance(request, Publish):
            return await self._publish(request, owner, session)
        if isinstance(request, Retract):
            await self._retract(request, owner)
        elif isinstance(request, Create):
            await self._create(request, owner)
        elif isinstance(request, ConfigureGet):
            node = await self._node(owner, request.node)
            return owner_result("configure", config_form(from_json(node.config)),
                                request.node)
        elif isinstance(request, ConfigureSet):
            await self._configure(request, owner)
        elif isinstance(request, DefaultGet):
            return owner_result("default", config_form(DEFAULT_CONFIG))
        elif isinstance(request, Delete):
            await self._delete(request, owner)
        elif isinstance(request, Purge):
            await self._purge(request, owner)
        return None

    async def _node(self, owner: str, name: str) -> PubsubNode:
        node = await self.host.storage.get_pubsub_node(owner, name)
        if node is None:
            raise pserr.item_not_found()
        return node

    # ------------------------------------------------------------------ use cases
    async def _publish(self, request: Publish, owner: str, session: Session) -> Element:
        """XEP-0060 §7.1 with auto-create (§7.1.4) and publish-options (§7.1.5)."""
        text = payload_to_text(request.payload)
        if len(text.encode()) > int(self.options["max_item_bytes"]):
            raise PubsubError(SEC.NOT_ACCEPTABLE, "payload-too-big")  # §7.1.3.4
        storage = self.host.storage
        node = await storage.get_pubsub_node(owner, request.node)
        existing = from_json(node.config) if node is not None else None
        if request.options is not None:
            config = publish_options(existing, request.options, cap=self._cap)
        else:
            config = existing or DEFAULT_CONFIG
        if config.payload_type and request.payload.ns != config.payload_type:
            raise PubsubError(SEC.BAD_REQUEST, "invalid-payload")  # §7.1.3.5
        # §7.1: "the pubsub service MUST generate [an ItemID] ... unique for that node".
        item_id = request.item_id or secrets.token_hex(16)
        item = PubsubItem(item_id, text, str(session.jid), time.time())
        try:
            await storage.publish_pubsub_item(
                owner, request.node, item, self._limits(config),
                create_config=to_json(config) if node is None else None)
        except PubsubNodeLimit:
            raise PubsubError(SEC.POLICY_VIOLATION, "max-nodes-exceeded",
                              text="too many PEP nodes") from None
        except PubsubQuotaExceeded:
            raise PubsubError(SEC.RESOURCE_CONSTRAINT,
                              text="PEP storage of this account is full") from None
        except PubsubNodeNotFound:  # deleted between our read and the publish
            raise pserr.item_not_found() from None
        payload = request.payload if config.deliver_payloads else None
        await self._broadcast(owner, request.node, config,
                              items_event(request.node, [(item_id, payload)]))
        return publish_result(request.node, item_id)

    async def _retract(self, request: Retract, owner: str) -> None:
        """XEP-0060 §7.2: delete items, notifying if asked to or configured so."""
        node = await self._node(owner, request.node)
        gone = await self.host.storage.retract_pubsub_items(owner, request.node,
                                                            request.item_ids)
        if not gone:
            raise pserr.item_not_found()  # §7.2.3.3
        config = from_json(node.config)
        notify = request.notify if request.notify is not None else config.notify_retract
        if notify:
            await self._broadcast(owner, request.node, config,
                                  retract_event(request.node, gone))

    async def _items(self, request: Items, owner: str, requester: Requester) -> Element:
        """XEP-0060 §6.5: items the node's access model lets the requester see."""
        node = await self.host.storage.get_pubsub_node(owner, request.node)
        if node is None:
            raise pserr.item_not_found()  # §6.5.9.11
        check_access(from_json(node.config), requester)
        found = await self.host.storage.get_pubsub_items(
            owner, request.node, ids=request.item_ids or None, last=request.max_items)
        return items_result(request.node, [(i.id, payload_from_text(i.payload))
                                           for i in found])

    async def _create(self, request: Create, owner: str) -> None:
        """XEP-0060 §8.1, with create-and-configure (§8.1.3)."""
        config = DEFAULT_CONFIG
        if request.config is not None:
            config = configure(DEFAULT_CONFIG, request.config, cap=self._cap)
        try:
            created = await self.host.storage.create_pubsub_node(
                owner, request.node, to_json(config),
                max_nodes=int(self.options["max_nodes_per_account"]))
        except PubsubNodeLimit:
            raise PubsubError(SEC.POLICY_VIOLATION, "max-nodes-exceeded",
                              text="too many PEP nodes") from None
        if not created:
            raise PubsubError(SEC.CONFLICT)  # §8.1.1: the NodeID already exists

    async def _configure(self, request: ConfigureSet, owner: str) -> None:
        """XEP-0060 §8.2.3-§8.2.5: apply the submitted form (items beyond a smaller
        max_items are deleted, oldest first)."""
        node = await self._node(owner, request.node)
        config = configure(from_json(node.config), request.form, cap=self._cap)
        try:
            await self.host.storage.configure_pubsub_node(
                owner, request.node, to_json(config), max_items=config.item_limit(self._cap))
        except PubsubNodeNotFound:
            raise pserr.item_not_found() from None

    async def _delete(self, request: Delete, owner: str) -> None:
        """XEP-0060 §8.4: delete the node and tell its subscribers."""
        node = await self._node(owner, request.node)
        config = from_json(node.config)
        recipients = await self._recipients(owner, request.node, config)
        await self.host.storage.delete_pubsub_node(owner, request.node)
        if config.notify_delete:
            self._send(owner, recipients, node_event("delete", request.node), config)

    async def _purge(self, request: Purge, owner: str) -> None:
        """XEP-0060 §8.5: delete all items; one purge notification, not one per item."""
        node = await self._node(owner, request.node)
        config = from_json(node.config)
        await self.host.storage.purge_pubsub_node(owner, request.node)
        if config.notify_retract:
            await self._broadcast(owner, request.node, config,
                                  node_event("purge", request.node))

    # ------------------------------------------------------------------ notifications
    async def _recipients(self, owner: str, node: str, config: NodeConfig) -> list[Session]:
        """XEP-0163 §4: the owner's available resources and those of contacts allowed by
        the access model, each only if it asked for ``node+notify`` (filtered
        notifications, XEP-0060 §9.2)."""
        if not config.deliver_notifications:
            return []
        wanted = [s for s in self.host.resources(owner) if self._wants(s, node)]
        if config.access_model is AccessModel.WHITELIST:
            return wanted
        _, items = await self.host.storage.get_roster(owner)
        for item in items:
            if item.subscription not in _SUBSCRIBED:
                continue
            contact = JID.parse(item.jid)
            if contact.domain != self.host.domain or contact.local is None:
                continue  # remote contacts need s2s
            if not may_access(config, Requester(False, item.subscription, item.groups)):
                continue
            # XEP-0163 §4.3.2: resources with non-negative priority that want the node.
            wanted.extend(s for s in self.host.resources(contact.local)
                          if s.priority >= 0 and self._wants(s, node))
        return wanted

    def _wants(self, session: Session, node: str) -> bool:
        return session.available and node in self.caps.notify_nodes(session)

    async def _broadcast(self, owner: str, node: str, config: NodeConfig,
                         event: Element) -> None:
        self._send(owner, await self._recipients(owner, node, config), event, config)

    def _send(self, owner: str, sessions: Sequence[Session], event: Element,
              config: NodeConfig, delay: str | None = None) -> None:
        owner_jid = f"{owner}@{self.host.domain}"
        for s in sessions:
            if s.conn.is_open:
                s.deliver(notification(owner_jid, str(s.jid), event, secrets.token_hex(8),
                                       type_=config.notification_type, delay=delay))

    async def on_interest(self, session: Session, nodes: frozenset[str]) -> None:
        """A session came online (or changed caps) wanting ``nodes``: send it the last
        item of each, from its own account and from the contacts whose presence it
        receives (XEP-0163 §4.3.3 item 2, §4.3.4)."""
        owners = [session.username]
        _, roster = await self.host.storage.get_roster(session.username)
        for contact_item in roster:
            contact = JID.parse(contact_item.jid)
            if contact_item.subscription in _SEES and contact.domain == self.host.domain \
                    and contact.local is not None:
                owners.append(contact.local)
        found = await self.host.storage.last_pubsub_items(owners, sorted(nodes))
        requesters: dict[str, Requester] = {session.username: OWNER}
        for owner, node, item in found:
            if owner not in requesters:
                # The owner's roster decides what the session may see, not the session's.
                requesters[owner] = await self._requester(owner, session)
            requester = requesters[owner]
            if requester.has_presence_subscription:
                self._send_last(owner, session, node, item, requester, on_presence=True)

    def _send_last(self, owner: str, session: Session, node: PubsubNode, item: PubsubItem,
                   requester: Requester, *, on_presence: bool) -> None:
        """A node's last published item to ``session``, if its configuration and access
        model allow (XEP-0060 pubsub#send_last_published_item)."""
        config = from_json(node.config)
        when = config.send_last_published_item
        if when is SendLastItem.NEVER or (on_presence and
                                          when is not SendLastItem.ON_SUB_AND_PRESENCE):
            return
        if not config.deliver_notifications or not may_access(config, requester):
            return
        payload = payload_from_text(item.payload) if config.deliver_payloads else None
        event = items_event(node.name, [(item.id, payload)])
        self._send(owner, [session], event, config, delay=delay_stamp(item.stamp))

    # ------------------------------------------------------------------ subscriptions
    async def on_presence_sent(self, event: StanzaEvent) -> None:
        """A presence subscription that may begin here: the owner approving a contact
        ('subscribed') or a contact asking one who pre-approved it ('subscribe', RFC 6121
        §3.4). XEP-0163 §4.3.4: "a PEP service MUST send the last published item to all
        new subscribers".

        The stanza is routed here (so the roster is updated) and then the roster is
        compared with what it was.
        """
        stanza, origin = event.stanza, event.origin
        if origin is None or stanza.to is None or stanza.type not in ("subscribed",
                                                                       "subscribe"):
            return
        to = stanza.to.bare
        if to.domain != self.host.domain or to.local is None:
            return
        owner, contact = ((origin.username, to.local) if stanza.type == "subscribed"
                          else (to.local, origin.username))
        contact_jid = str(JID(contact, self.host.domain, None))
        before = await self.host.storage.get_roster_item(owner, contact_jid)
        if before is not None and before.subscription in _SUBSCRIBED:
            return  # nothing begins: let the router deliver it as usual
        event.stop = True
        work = self.host.presence.outbound(stanza, origin)
        if work is not None:
            await work
        after = await self.host.storage.get_roster_item(owner, contact_jid)
        if after is None or after.subscription not in _SUBSCRIBED:
            return
        requester = Requester(False, after.subscription, after.groups)
        for s in self.host.resources(contact):
            nodes = self.caps.notify_nodes(s)
            if not s.available or not nodes:
                continue
            for _, node, item in await self.host.storage.last_pubsub_items([owner],
                                                                           sorted(nodes)):
                self._send_last(owner, s, node, item, requester, on_presence=False)

    # ------------------------------------------------------------------ disco
    async def account_disco_items(self, owner: str, session: Session,
                                  node: str | None) -> list[Element]:
        """XEP-0030 items of an account (the disco module asks): its nodes the requester
        may access (XEP-0163 §6.2), or a node's item ids (XEP-0060 §5.5)."""
        requester = await self._requester(owner, session)
        owner_jid = f"{owner}@{self.host.domain}"
        storage = self.host.storage
        if node is None:
            found = []
            for n in await storage.list_pubsub_nodes(owner):
                if may_access(from_json(n.config), requester):
                    found.append(Element(NS_ITEMS, "item", {"jid": owner_jid, "node": n.name}))
            return found
        pubsub_node = await storage.get_pubsub_node(owner, node)
        if pubsub_node is None or not may_access(from_json(pubsub_node.config), requester):
            raise pserr.item_not_found()
        return [Element(NS_ITEMS, "item", {"jid": owner_jid, "name": i.id})
                for i in await storage.get_pubsub_items(owner, node)]


MODULES = (PEP,)
