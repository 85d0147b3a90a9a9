"""Publish-subscribe errors: a stanza condition plus the XEP-0060 §7-§8 application condition.

RFC 6120 §8.3.2 puts an application-specific condition after the defined condition (and
after the text); XEP-0060 qualifies it by ``http://jabber.org/protocol/pubsub#errors``.
"""

from __future__ import annotations

from stockade.core.errors import StanzaError, StanzaErrorCondition
from stockade.core.stanza import error_element
from stockade.core.xml import Element

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = NS_PUBSUB + "#owner"
NS_PUBSUB_EVENT = NS_PUBSUB + "#event"
NS_PUBSUB_ERRORS = NS_PUBSUB + "#errors"

SEC = StanzaErrorCondition


class PubsubError(StanzaError):
    """A pubsub request failed: ``condition`` plus an optional pubsub#errors element
    (``app``, e.g. "precondition-not-met"); ``feature`` goes with app "unsupported"."""

    def __init__(self, condition: StanzaErrorCondition, app: str | None = None, *,
                 feature: str | None = None, text: str | None = None) -> None:
        element = None
        if app is not None:
            element = Element(NS_PUBSUB_ERRORS, app, {"feature": feature} if feature else None)
        super().__init__(condition, text, app=element)
        self.pubsub_condition = app
        self.feature = feature

    def error_element(self, ns: str) -> Element:
        """The ``<error/>`` child, in the stanza namespace ``ns``."""
        err = error_element(self)
        err.ns = ns
        return err


def unsupported(feature: str) -> PubsubError:
    """XEP-0060: a use case this service does not implement."""
    return PubsubError(SEC.FEATURE_NOT_IMPLEMENTED, "unsupported", feature=feature)


def nodeid_required() -> PubsubError:
    """XEP-0060 §7.2.3.3: the request names no node."""
    return PubsubError(SEC.BAD_REQUEST, "nodeid-required")


def item_not_found() -> PubsubError:
    """The node (or item) does not exist, or must look as if it did not."""
    return PubsubError(SEC.ITEM_NOT_FOUND)


def precondition_not_met(text: str | None = None) -> PubsubError:
    """XEP-0060 §7.1.5: publish-options that the node does not (or cannot) satisfy."""
    return PubsubError(SEC.CONFLICT, "precondition-not-met", text=text)
