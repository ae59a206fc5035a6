#!/usr/bin/env bash
# The workflows walkthrough from the README, runnable: create the build-test-deploy workflow with
# curl, read it until it has finished, print each step, then delete it.
#   KUBEGATE_URL=http://127.0.0.1:8080 KUBEGATE_API_KEY=sk_live_... bash examples/workflows.sh
set -euo pipefail
: "${KUBEGATE_URL:=http://127.0.0.1:8080}"
: "${KUBEGATE_API_KEY:?mint one with: kubegate keys create --name me}"
auth=(-H "Authorization: Bearer ${KUBEGATE_API_KEY}")
here=$(dirname "$0")
status() { python3 -c 'import json,sys; print(json.load(sys.stdin)["workflow"]["status"])'; }

echo "# create the workflow: build -> test -> deploy, passing outputs along"
created=$(curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' \
  -d @"$here/build-test-deploy.json" "$KUBEGATE_URL/api/workflows")
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["workflow"]["id"])' <<<"$created")
echo "created $id"

echo "# read it until it has finished (a script would rather use MCP's workflows_wait)"
for _ in $(seq 1 600); do
  workflow=$(curl -sS --fail-with-body "${auth[@]}" "$KUBEGATE_URL/api/workflows/$id")
  case $(status <<<"$workflow") in pending|running) sleep 0.2 ;; *) break ;; esac
done
python3 -c '
import json, sys
w = json.load(sys.stdin)["workflow"]
print("workflow %s: %s" % (w["id"], w["status"]))
for s in w["steps"]:
    print("  %-8s %-10s exit=%s output=%r" % (s["name"], s["status"], s.get("exitCode"), s.get("output")))
' <<<"$workflow"

echo "# list running workflows"
curl -sS --fail-with-body "${auth[@]}" "$KUBEGATE_URL/api/workflows?status=running"; echo

echo "# delete it"
curl -sS --fail-with-body -o /dev/null -X DELETE "${auth[@]}" "$KUBEGATE_URL/api/workflows/$id" && echo deleted
test "$(status <<<"$workflow")" = completed
