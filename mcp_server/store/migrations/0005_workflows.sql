-- Workflows: a DAG of steps. A workflow's status is derived from its steps by the engine;
-- step env values wait in run_secrets (keyed by the step's run id) until the step has started.
CREATE TABLE workflows (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    step_count    INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    completed_at  TEXT
);
CREATE INDEX workflows_by_user ON workflows(user_id, created_at DESC, id DESC);
CREATE INDEX workflows_by_status ON workflows(status);

CREATE TABLE workflow_steps (
    workflow_id      TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    name             TEXT NOT NULL,
    run_id           TEXT NOT NULL UNIQUE,
    image            TEXT NOT NULL,
    command          TEXT NOT NULL,
    env_keys         TEXT NOT NULL,
    depends_on       TEXT NOT NULL,
    timeout_seconds  REAL NOT NULL,
    size             TEXT NOT NULL,
    network          INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    reason           TEXT,
    message          TEXT,
    exit_code        INTEGER,
    output           TEXT,
    started_at       TEXT,
    completed_at     TEXT,
    PRIMARY KEY (workflow_id, name)
);
CREATE INDEX workflow_steps_by_status ON workflow_steps(status);
