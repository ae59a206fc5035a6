-- The audit log names the API key that acted (its id, never the secret).
ALTER TABLE audit_log ADD COLUMN key_id TEXT;
