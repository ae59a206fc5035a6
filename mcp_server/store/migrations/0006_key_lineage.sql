-- Key lineage: the key that minted a key (NULL for roots: the CLI's keys and keys made in a
-- login session). Revoking a key revokes its descendants.
ALTER TABLE api_keys ADD COLUMN parent_id TEXT REFERENCES api_keys(id) ON DELETE SET NULL;
CREATE INDEX api_keys_by_parent ON api_keys(parent_id);
