"""Namespaces and status codes used by Multi-User Chat (XEP-0045 §16) and its neighbours."""

from __future__ import annotations

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
NS_ROOMINFO = "http://jabber.org/protocol/muc#roominfo"
NS_STABLE_ID = "http://jabber.org/protocol/muc#stable_id"
NS_SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization"  # XEP-0410
NS_DATA = "jabber:x:data"  # XEP-0004
NS_DELAY = "urn:xmpp:delay"  # XEP-0203
NS_SID = "urn:xmpp:sid:0"  # XEP-0359
NS_MAM = "urn:xmpp:mam:2"  # XEP-0313
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"  # XEP-0199
NS_CLIENT = "jabber:client"
NS_OMEMO = ("eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2")

#: XEP-0045 §16.6 status codes (the registry), by what they say.
NON_ANONYMOUS = "100"
SELF = "110"
CONFIG_CHANGED = "104"
LOGGING_ON = "170"
LOGGING_OFF = "171"
NOW_NON_ANONYMOUS = "172"
NOW_SEMI_ANONYMOUS = "173"
CREATED = "201"
BANNED = "301"
NICK_CHANGED = "303"
KICKED = "307"
AFFILIATION_REMOVED = "321"
MEMBERS_ONLY_REMOVED = "322"
SHUTDOWN = "332"
TECHNICAL = "333"
