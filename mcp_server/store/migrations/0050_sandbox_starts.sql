-- Sandbox starts a follower replica handed to the engine's leader, oldest first. The spec holds
-- the sandbox's env and its generated password only until the leader takes it (at once, when a
-- leader is up); the row goes with its sandbox.
CREATE TABLE sandbox_starts (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id  TEXT NOT NULL UNIQUE REFERENCES sandboxes(id) ON DELETE CASCADE,
    spec        TEXT NOT NULL
);
