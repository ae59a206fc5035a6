-- Whether a deployment's replicas have outbound network (the default, as on a deployment platform).
ALTER TABLE deployments ADD COLUMN network INTEGER NOT NULL DEFAULT 1;
