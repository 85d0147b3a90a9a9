-- Stockade storage schema, version 1.
--
-- Forward-only: never edit this file once released; add 0002_*.sql instead.
-- The migration runner wraps this file in one transaction and records the
-- version in schema_version itself, so no BEGIN/COMMIT here.
--
-- Every per-account table references accounts(username) ON DELETE CASCADE:
-- deleting an account must leave nothing of it behind (keys, contacts, mail).

CREATE TABLE accounts (
    username TEXT PRIMARY KEY NOT NULL CHECK (length(username) > 0)
);

-- SCRAM keys only (RFC 5802 §3); a password is never stored.
CREATE TABLE scram_credentials (
    username   TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    hash_name  TEXT NOT NULL CHECK (hash_name IN ('SHA-1', 'SHA-256', 'SHA-512')),
    salt       BLOB NOT NULL,
    iterations INTEGER NOT NULL CHECK (iterations >= 1),
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (username, hash_name)
);

-- SASL EXTERNAL: SHA-256 of the client certificate (DER), lowercase hex.
-- The fingerprint is the primary key, so one certificate maps to one account.
CREATE TABLE cert_fingerprints (
    sha256   TEXT PRIMARY KEY NOT NULL CHECK (length(sha256) = 64),
    username TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE
);
CREATE INDEX cert_fingerprints_username ON cert_fingerprints (username);

-- RFC 6121 §2.1.2: one item per contact (bare JID).
CREATE TABLE roster_items (
    username     TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    jid          TEXT NOT NULL,
    name         TEXT,
    subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask          INTEGER NOT NULL CHECK (ask IN (0, 1)),
    approved     INTEGER NOT NULL CHECK (approved IN (0, 1)),
    PRIMARY KEY (username, jid)
);

-- Groups of a roster item; position keeps the order the client sent.
CREATE TABLE roster_groups (
    username TEXT NOT NULL,
    jid      TEXT NOT NULL,
    position INTEGER NOT NULL CHECK (position >= 0),
    name     TEXT NOT NULL,
    PRIMARY KEY (username, jid, position),
    UNIQUE (username, jid, name),
    FOREIGN KEY (username, jid) REFERENCES roster_items (username, jid) ON DELETE CASCADE
);

-- RFC 6121 §2.6: one counter per account, bumped on every roster change.
CREATE TABLE roster_versions (
    username TEXT PRIMARY KEY NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    version  INTEGER NOT NULL CHECK (version >= 0)
);

-- RFC 6121 §3.1.3: inbound subscription requests kept until answered.
-- id orders them by arrival; a newer request from the same contact replaces
-- the older one (and so moves to the end).
CREATE TABLE pending_subscriptions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    from_jid TEXT NOT NULL,
    stanza   TEXT NOT NULL,
    UNIQUE (username, from_jid)
);

-- AUTOINCREMENT (not plain rowid) so an id is never reused after deletion:
-- a late delete_offline() for an old id can never hit a newer message.
CREATE TABLE offline_messages (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    stanza   TEXT NOT NULL,
    stamp    REAL NOT NULL
);
CREATE INDEX offline_messages_username ON offline_messages (username, id);
