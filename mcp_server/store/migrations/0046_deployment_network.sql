-- Whether a deployment's replicas have outbound network (off unless asked, as for tasks and sandboxes;
-- deployments made before this column had none).
ALTER TABLE deployments ADD COLUMN network INTEGER NOT NULL DEFAULT 0;
