-- Deployments: a user's long-running apps, from a template (pinned to a version) or a raw image.
-- The name is generated, unique in the gateway (it is the app's host label). Secret env values
-- are kept (the data dir is the gateway's own, mode 0700) so replicas can be started again after
-- a restart; no door shows them. ``revision`` grows with every change but a scale.
CREATE TABLE deployments (
    name              TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    template          TEXT,
    template_version  INTEGER,
    image             TEXT NOT NULL,
    port              INTEGER NOT NULL,
    command           TEXT,
    health_path       TEXT NOT NULL,
    cpu_request       TEXT NOT NULL,
    cpu_limit         TEXT NOT NULL,
    memory_request    TEXT NOT NULL,
    memory_limit      TEXT NOT NULL,
    replicas          INTEGER NOT NULL,
    visibility        TEXT NOT NULL,
    revision          INTEGER NOT NULL,
    status            TEXT NOT NULL,
    ready_replicas    INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX deployments_by_user ON deployments(user_id, created_at DESC, name DESC);

CREATE TABLE deployment_env (
    name      TEXT NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    env_name  TEXT NOT NULL,
    value     TEXT NOT NULL,
    secret    INTEGER NOT NULL,
    PRIMARY KEY (name, position)
);
