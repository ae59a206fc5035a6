-- Each replica's last reported state (JSON list: replica, revision, ready, restarts, started,
-- lastError), written with the status so any process answers deployments_get from the store.
ALTER TABLE deployments ADD COLUMN replica_status TEXT;
