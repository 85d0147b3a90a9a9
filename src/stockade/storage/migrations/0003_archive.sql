-- Stockade storage schema, version 3: XEP-0313 message archive (storage/archive.py).
-- One table for user and room archives: 'owner' is a username (no '@') or a room's bare JID.

CREATE TABLE archive (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,  -- archive order, never reused
    owner         TEXT NOT NULL,
    uid           TEXT NOT NULL,                      -- the archive id (XEP-0359 stanza-id)
    stamp_us      INTEGER NOT NULL,                   -- microseconds, never decreasing per owner
    with_bare     TEXT NOT NULL,
    with_resource TEXT NOT NULL DEFAULT '',
    stanza        TEXT NOT NULL
);

CREATE UNIQUE INDEX archive_by_uid ON archive (owner, uid);
CREATE INDEX archive_by_owner ON archive (owner, seq);
CREATE INDEX archive_by_with ON archive (owner, with_bare, seq);
CREATE INDEX archive_by_owner_stamp ON archive (owner, stamp_us);
CREATE INDEX archive_by_stamp ON archive (stamp_us);

-- A deleted account leaves no archive behind (room owners contain '@', usernames never do).
CREATE TRIGGER archive_account_deleted AFTER DELETE ON accounts
BEGIN
    DELETE FROM archive WHERE owner = old.username;
END;
