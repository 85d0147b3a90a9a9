"""Feature modules, one per RFC section or XEP. The order here is the install order."""

from __future__ import annotations

from stockade.server.module import Module


def default_modules() -> list[type[Module]]:
    """The modules every host runs, dependencies first."""
    from stockade.server.modules.rfc6121_presence import Presence
    from stockade.server.modules.rfc6121_roster import Roster
    from stockade.server.modules.xep0030_disco import Disco
    from stockade.server.modules.xep0160_offline import Offline
    from stockade.server.modules.xep0199_ping import Ping

    return [Disco, Roster, Presence, Offline, Ping]
