-- A step is claimed (its run handed to the runtime) before it starts: while it waits for a
-- fair-share slot it stays `pending`, as a queued task does. `claimed_at` marks the hand-over;
-- `started_at` is now set only when the run has really started.
ALTER TABLE workflow_steps ADD COLUMN claimed_at TEXT;
UPDATE workflow_steps SET claimed_at = started_at WHERE started_at IS NOT NULL;
