#!/usr/bin/env bash
# The API-key walkthrough from the README, runnable: create, list and revoke keys with curl,
# then show that the revoked key is refused at once.
#   KUBEGATE_URL=http://127.0.0.1:8080 KUBEGATE_API_KEY=sk_live_... bash examples/api-keys.sh
set -euo pipefail
: "${KUBEGATE_URL:=http://127.0.0.1:8080}"
: "${KUBEGATE_API_KEY:?mint one with: kubegate keys create --name me}"
auth=(-H "Authorization: Bearer ${KUBEGATE_API_KEY}")

echo "# create a key (its secret is shown only in this answer)"
created=$(curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' \
  -d '{"name": "CI/CD Pipeline", "expiresInDays": 90}' "$KUBEGATE_URL/api/api-keys")
echo "$created"
new_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"]["id"])' <<<"$created")
new_key=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"]["key"])' <<<"$created")

echo "# list keys"
curl -sS --fail-with-body "${auth[@]}" "$KUBEGATE_URL/api/api-keys"; echo

echo "# the new key works"
curl -sS --fail-with-body -H "Authorization: Bearer $new_key" "$KUBEGATE_URL/api/api-keys" >/dev/null && echo ok

echo "# revoke it"
curl -sS --fail-with-body -X DELETE "${auth[@]}" "$KUBEGATE_URL/api/api-keys/$new_id"; echo

echo "# the revoked key is refused on the very next request"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $new_key" "$KUBEGATE_URL/api/api-keys")
echo "HTTP $status"
test "$status" = 401
