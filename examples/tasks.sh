#!/usr/bin/env bash
# The tasks walkthrough from the README, runnable: create a task with curl, read it until it has
# finished, list tasks, then delete it.
#   KUBEGATE_URL=http://127.0.0.1:8080 KUBEGATE_API_KEY=sk_live_... bash examples/tasks.sh
set -euo pipefail
: "${KUBEGATE_URL:=http://127.0.0.1:8080}"
: "${KUBEGATE_API_KEY:?mint one with: kubegate keys create --name me}"
auth=(-H "Authorization: Bearer ${KUBEGATE_API_KEY}")
here=$(dirname "$0")
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)["task"].get(sys.argv[1]); print("" if v is None else v)' "$1"; }

echo "# create a task (env values are secret: only their names come back, as envKeys)"
created=$(curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' \
  -d @"$here/hello-task.json" "$KUBEGATE_URL/api/tasks")
echo "$created"
id=$(field id <<<"$created")

echo "# read it until it has finished (a script would rather use MCP's tasks_wait)"
for _ in $(seq 1 300); do
  task=$(curl -sS --fail-with-body "${auth[@]}" "$KUBEGATE_URL/api/tasks/$id")
  case $(field status <<<"$task") in pending|running) sleep 0.2 ;; *) break ;; esac
done
echo "$task"
echo "status: $(field status <<<"$task"), exit code: $(field exitCode <<<"$task"), output: $(field output <<<"$task")"

echo "# list completed tasks, newest first"
curl -sS --fail-with-body "${auth[@]}" "$KUBEGATE_URL/api/tasks?status=completed&limit=5"; echo

echo "# delete it (stops it if it is still running)"
curl -sS --fail-with-body -X DELETE "${auth[@]}" "$KUBEGATE_URL/api/tasks/$id"; echo
status=$(curl -sS -o /dev/null -w '%{http_code}' "${auth[@]}" "$KUBEGATE_URL/api/tasks/$id")
echo "after delete: HTTP $status"
test "$status" = 404
