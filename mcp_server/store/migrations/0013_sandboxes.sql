-- Sandboxes: long-lived environments. The password is kept only as a SHA-256 digest; env values
-- are never stored (they go to the sandbox at start). A user's live names are unique.
CREATE TABLE sandboxes (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    host_label       TEXT NOT NULL,
    image            TEXT NOT NULL,
    size             TEXT NOT NULL,
    network          INTEGER NOT NULL DEFAULT 0,
    env_keys         TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    message          TEXT,
    timeout_seconds  REAL NOT NULL,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    expires_at       TEXT NOT NULL,
    ended_at         TEXT
);
CREATE INDEX sandboxes_by_user ON sandboxes(user_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX sandboxes_live_names ON sandboxes(user_id, name) WHERE status IN ('provisioning', 'running');
CREATE INDEX sandboxes_live_hosts ON sandboxes(host_label) WHERE status IN ('provisioning', 'running');
