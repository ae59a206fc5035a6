-- Whether a template's deployments get outbound network (off unless the admin says so, as for
-- deployments themselves; versions written before this column had none).
ALTER TABLE template_versions ADD COLUMN network INTEGER NOT NULL DEFAULT 0;
