-- Stockade storage schema, version 7: XEP-0363 HTTP upload slots and files
-- (storage/upload.py). The file itself lives under data_dir/uploads/<token>/.
--
-- 'expires' is the PUT deadline while the slot is pending (completed IS NULL) and the
-- file's expiry once it is uploaded (NULL: kept until the account goes). Never the PUT
-- secret: put_digest is its SHA-256.

CREATE TABLE uploads (
    token        TEXT PRIMARY KEY CHECK (length(token) BETWEEN 22 AND 64),
    username     TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    filename     TEXT NOT NULL CHECK (length(filename) > 0),
    size         INTEGER NOT NULL CHECK (size > 0),
    content_type TEXT NOT NULL,
    put_digest   BLOB NOT NULL CHECK (length(put_digest) = 32),
    created      REAL NOT NULL,
    expires      REAL,
    completed    REAL
) WITHOUT ROWID;

CREATE INDEX uploads_by_owner ON uploads (username);
CREATE INDEX uploads_by_expiry ON uploads (expires) WHERE expires IS NOT NULL;
