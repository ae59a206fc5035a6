-- Audit log of state-changing requests: who, what, when, from where. No foreign key: the
-- trail must outlive the user it names.
CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    user_id      TEXT,
    email        TEXT,
    auth_method  TEXT,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    action       TEXT,
    status       INTEGER NOT NULL,
    client_ip    TEXT
);
CREATE INDEX audit_log_by_time ON audit_log(created_at DESC, id DESC);
CREATE INDEX audit_log_by_user ON audit_log(user_id, created_at DESC, id DESC);
