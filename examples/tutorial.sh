#!/usr/bin/env bash
# The tutorial's curl calls, in order, against a running server; each answer is checked.
#   BASE_URL=http://127.0.0.1:8080 HELIOSDB_API_KEY=sk_... examples/tutorial.sh
# (with --no-auth, leave HELIOSDB_API_KEY empty). Exits non-zero at the first wrong answer.
set -euo pipefail
BASE_URL=${BASE_URL:-http://127.0.0.1:8080}
AUTH=()
[ -n "${HELIOSDB_API_KEY:-}" ] && AUTH=(-H "X-API-Key: ${HELIOSDB_API_KEY}")
STEP=0

call() {   # call METHOD PATH [JSON]  -> sets STATUS and BODY; waits out 429s as Retry-After says
  local out headers retry
  STEP=$((STEP + 1))
  headers=$(mktemp)
  while :; do
    out=$(curl -sS -D "$headers" -w '\n%{http_code}' -X "$1" "$BASE_URL$2" "${AUTH[@]}" \
          -H 'Content-Type: application/json' ${3:+--data-binary "$3"})
    STATUS=${out##*$'\n'}
    BODY=${out%$'\n'*}
    [ "$STATUS" = 429 ] || break
    retry=$(awk 'tolower($1) == "retry-after:" {print $2+0}' "$headers")
    echo "    rate limited; retrying in ${retry:-1}s"
    sleep "${retry:-1}"
  done
  rm -f "$headers"
  echo "[$STEP] $1 $2 -> $STATUS"
}

expect() { # expect STATUS PYTHON_CONDITION_ON_j
  if [ "$STATUS" != "$1" ]; then
    echo "step $STEP: expected HTTP $1, got $STATUS: $BODY" >&2; exit 1
  fi
  if [ -n "${2:-}" ]; then
    python3 - "$BODY" "$2" <<'PY' || { echo "step $STEP: unexpected body: $BODY" >&2; exit 1; }
import json, sys
j = json.loads(sys.argv[1]) if sys.argv[1] else None
if not eval(sys.argv[2], {"j": j}):
    sys.exit(1)
PY
  fi
}

call GET /health;                     [ "$BODY" = "OK" ] && expect 200
call GET /version;                    expect 200 'j["name"] == "HeliosDB Nano" and j["api_version"] == "v1"'

# Tables and rows
call POST /v1/branches/main/execute '{"sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, age INT, created_at INT)"}'
expect 200 'j["statement_type"] == "CREATE_TABLE" and j["message"] == "CREATE_TABLE statement executed successfully on branch '"'"'main'"'"'"'
call POST /v1/branches/main/tables/users/data '{"rows": [{"id": 1, "name": "Alice", "email": "alice@example.com", "age": 30, "created_at": 1701446400}, {"id": 2, "name": "Bob", "email": "bob@example.com", "age": 22, "created_at": 1701446500}]}'
expect 201 'j["inserted"] == 2'
call GET '/v1/branches/main/tables/users/data?filter=age%20%3E%2025&order_by=created_at%20DESC,%20id&limit=10'
expect 200 'j["total"] == 1 and j["rows"][0]["name"] == "Alice" and j["has_more"] is False'
call GET /v1/branches/main/tables
expect 200 'j["tables"][0]["name"] == "users" and j["tables"][0]["row_count"] == 2'
call PUT /v1/branches/main/tables/users/data '{"values": {"age": 31}, "filter": "id = 1"}'
expect 200 'j["updated"] == 1'

# SQL with typed parameters
call POST /v1/branches/main/query '{"sql": "SELECT name, age FROM users WHERE age > $1 ORDER BY id", "params": [{"type": "int4", "value": 25}]}'
expect 200 'j["columns"] == ["name", "age"] and j["column_types"] == ["text", "int4"] and j["rows"] == [{"name": "Alice", "age": 31}] and j["row_count"] == 1'
call POST /v1/branches/main/execute '{"sql": "INSERT INTO users VALUES ($1, $2, $3, $4, $5)", "params": [{"type": "int4", "value": 3}, {"type": "text", "value": "Carol"}, {"type": "text", "value": "carol@example.com"}, {"type": "int4", "value": 41}, {"type": "int8", "value": 1701446600}]}'
expect 200 'j["statement_type"] == "INSERT" and j["affected_rows"] == 1'

# Branches: create, change, merge
call POST /v1/branches '{"name": "feature-user-auth", "parent": "main"}'
expect 201 'j["name"] == "feature-user-auth" and j["parent"] == "main" and j["stats"]["total_keys"] == 3'
call POST /v1/branches/feature-user-auth/execute '{"sql": "UPDATE users SET name = '"'"'Alice Smith'"'"' WHERE id = 1"}'
expect 200 'j["affected_rows"] == 1'
call POST /v1/branches/main/execute '{"sql": "UPDATE users SET name = '"'"'Alice Johnson'"'"' WHERE id = 1"}'
expect 200 'j["affected_rows"] == 1'
call GET /v1/branches
expect 200 'j["total"] == 2'
call POST /v1/branches/feature-user-auth/merge '{"target": "main", "strategy": "Manual"}'
expect 409 'j["error"] == "Conflict" and j["details"]["conflicts"][0]["key"] == "users:1"'
call POST /v1/branches/feature-user-auth/merge '{"target": "main", "strategy": "Auto"}'
# Auto: the newer change wins, and main's rename came after the branch's.
expect 200 'j["completed"] and len(j["conflicts"]) == 1 and j["conflicts"][0]["resolved_value"]["name"] == "Alice Johnson"'

# Time travel: read main as it was before the merge
BEFORE=$(python3 -c 'import time; print(time.time())')
sleep 0.01
call POST /v1/branches/main/execute '{"sql": "DELETE FROM users WHERE id = 2"}'
expect 200 'j["affected_rows"] == 1'
call POST /v1/branches/main/query "{\"sql\": \"SELECT count(*) AS n FROM users\", \"as_of\": {\"type\": \"timestamp\", \"value\": $BEFORE}}"
expect 200 'j["rows"] == [{"n": 3}]'
call GET "/v1/branches/main/tables/users/data?as_of=$BEFORE"
expect 200 'j["total"] == 3'
call POST /v1/branches/main/query "{\"sql\": \"SELECT count(*) AS n FROM users AS OF SYSTEM TIME $BEFORE\"}"
expect 200 'j["rows"] == [{"n": 3}]'
call POST /v1/branches/main/query '{"sql": "SELECT count(*) AS n FROM users"}'
expect 200 'j["rows"] == [{"n": 2}]'

# Errors are one JSON shape
call POST /v1/branches/main/query '{"sql": "SELEC 1"}'
expect 400 'j["status"] == 400 and j["error"] == "BadRequest" and j["details"]["line"] == 1'
call DELETE /v1/branches/feature-user-auth
expect 204
echo "tutorial: all $STEP steps answered as documented"
