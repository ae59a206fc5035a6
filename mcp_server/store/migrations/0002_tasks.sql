-- Tasks: one-off runs. Env values live in run_secrets only until the run has ended.
CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    image            TEXT NOT NULL,
    command          TEXT NOT NULL,
    env_keys         TEXT NOT NULL,
    timeout_seconds  REAL NOT NULL,
    size             TEXT NOT NULL,
    network          INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    reason           TEXT,
    exit_code        INTEGER,
    output           TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    completed_at     TEXT
);
CREATE INDEX tasks_by_user ON tasks(user_id, created_at DESC, id DESC);
CREATE INDEX tasks_by_status ON tasks(status);

CREATE TABLE run_secrets (
    run_id  TEXT PRIMARY KEY,
    env     TEXT NOT NULL
);
