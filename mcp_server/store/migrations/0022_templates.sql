-- Deployment templates: admin-defined apps. Every change is a new row in template_versions, so
-- a deployment can pin (name, version); a deleted template keeps its versions (deleted_at set)
-- for the deployments that pinned them, and a template created again under that name goes on
-- numbering from the last version.
CREATE TABLE templates (
    name        TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    source      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT
);

CREATE TABLE template_versions (
    name               TEXT NOT NULL REFERENCES templates(name) ON DELETE CASCADE,
    version            INTEGER NOT NULL,
    display_name       TEXT NOT NULL,
    description        TEXT NOT NULL,
    category           TEXT NOT NULL,
    image              TEXT NOT NULL,
    port               INTEGER NOT NULL,
    cpu_request        TEXT NOT NULL,
    cpu_limit          TEXT NOT NULL,
    memory_request     TEXT NOT NULL,
    memory_limit       TEXT NOT NULL,
    health_check_path  TEXT NOT NULL,
    enabled            INTEGER NOT NULL,
    command            TEXT,
    created_at         TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- Env vars of one version, in order. Secret values live here too (the data dir is the
-- gateway's own, mode 0700) so a deployment can use them; no door ever shows them.
CREATE TABLE template_env (
    name      TEXT NOT NULL,
    version   INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    env_name  TEXT NOT NULL,
    value     TEXT NOT NULL,
    secret    INTEGER NOT NULL,
    PRIMARY KEY (name, version, position),
    FOREIGN KEY (name, version) REFERENCES template_versions(name, version) ON DELETE CASCADE
);
