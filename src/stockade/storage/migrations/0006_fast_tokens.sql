-- Stockade storage schema, version 6: FAST tokens, XEP-0484 (storage/fast.py).
--
-- Never a token: verifier is SHA-256 of the token's expected HT initiator proof, responder
-- the HT responder proof (core/sasl/ht.py explains why neither logs anyone in).
-- At most two per account and client (the SASL2 user-agent id): 'current' and 'new'.

CREATE TABLE fast_tokens (
    username   TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    client_id  TEXT NOT NULL CHECK (length(client_id) BETWEEN 1 AND 128),
    slot       TEXT NOT NULL CHECK (slot IN ('current', 'new')),
    mechanism  TEXT NOT NULL,
    verifier   BLOB NOT NULL CHECK (length(verifier) = 32),
    responder  BLOB NOT NULL,
    expires_at REAL NOT NULL,
    last_count INTEGER NOT NULL DEFAULT 0 CHECK (last_count >= 0),
    PRIMARY KEY (username, client_id, slot)
) WITHOUT ROWID;

-- SECURITY: a token must not outlive the password it was obtained with. Changing the
-- password replaces the SCRAM credentials (delete, then insert), whoever does it (CLI,
-- in-band registration), so the tokens go with the old credentials.
CREATE TRIGGER fast_tokens_revoked_with_password
AFTER DELETE ON scram_credentials
BEGIN
    DELETE FROM fast_tokens WHERE username = OLD.username;
END;
