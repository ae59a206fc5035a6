-- Runs waiting for a fair-share slot (KUBEGATE_MAX_ACTIVE_RUNS[_PER_USER]), oldest first. The
-- spec (env values included) stays here only while the run waits; it is deleted when it starts.
CREATE TABLE run_queue (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT NOT NULL UNIQUE,
    owner    TEXT NOT NULL,
    spec     TEXT NOT NULL
);
