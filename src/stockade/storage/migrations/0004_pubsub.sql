-- Stockade storage schema, version 4: XEP-0060/0163 PEP nodes and items (storage/pubsub.py).

-- One row per node of an account's PEP service; config is a JSON document the core owns.
CREATE TABLE pubsub_nodes (
    username TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    node     TEXT NOT NULL,
    config   TEXT NOT NULL,
    created  REAL NOT NULL,
    PRIMARY KEY (username, node)
) WITHOUT ROWID;

-- Items in publish order (seq is never reused); they go with their node, and so with the
-- account.
CREATE TABLE pubsub_items (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    username  TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    node      TEXT NOT NULL,
    item_id   TEXT NOT NULL,
    payload   TEXT NOT NULL,
    publisher TEXT NOT NULL,
    stamp     REAL NOT NULL,
    FOREIGN KEY (username, node) REFERENCES pubsub_nodes (username, node) ON DELETE CASCADE,
    UNIQUE (username, node, item_id)
);

CREATE INDEX pubsub_items_by_node ON pubsub_items (username, node, seq);
