-- Stockade storage schema, version 5: XEP-0045 persistent rooms (storage/muc.py).
-- Room messages are kept in the archive table (version 3) with the room's JID as owner.

CREATE TABLE muc_rooms (
    jid           TEXT PRIMARY KEY,  -- the room's bare JID
    config        TEXT NOT NULL,     -- JSON document: the room configuration
    created       REAL NOT NULL,
    subject       TEXT,
    subject_nick  TEXT,              -- the occupant who set it (NULL: the room itself)
    subject_stamp REAL
) WITHOUT ROWID;

CREATE TABLE muc_affiliations (
    room        TEXT NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE,
    jid         TEXT NOT NULL,       -- a bare JID or a domain
    affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
    nick        TEXT,                -- reserved nickname (XEP-0045 §7.12)
    reason      TEXT,
    PRIMARY KEY (room, jid)
) WITHOUT ROWID;
