-- Why a task failed when its exit code cannot say (it could not start, say).
ALTER TABLE tasks ADD COLUMN message TEXT;
