-- Stockade storage schema, version 2: small per-account documents (storage/account_data.py).

CREATE TABLE account_data (
    username  TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    updated   REAL NOT NULL,
    PRIMARY KEY (username, namespace, key)
) WITHOUT ROWID;
