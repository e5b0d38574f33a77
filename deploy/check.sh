#!/usr/bin/env bash
# Checks the deployment files on a machine without a container engine:
#
#  1. static: the Dockerfile's Rust image is Cargo.toml's rust-version, the image listens where
#     it EXPOSEs, .dockerignore keeps secrets and build output out, compose.yaml has the shape
#     the README promises (healthcheck-gated start, a migrate step first, loopback-only ports);
#  2. the Dockerfile's build stage: its COPY and RUN lines are replayed in a scratch directory
#     (RUN with /bin/sh, as Docker does), so a file the build needs but the Dockerfile does not
#     copy fails here; `target/` is linked to CHECK_TARGET_DIR (default: this checkout's target
#     dir) so the dependencies already built are reused;
#  3. the runtime stage: the binary it copies runs as the distroless `nonroot` user (uid 65532)
#     with exactly the image's ENV and WORKDIR: `migrate`, then `serve` until /readyz answers,
#     then SIGTERM must end it with exit 0. The image's AUTHD_BIND=0.0.0.0:8080 is replaced by a
#     free 127.0.0.1 port (nothing here listens beyond loopback);
#  4. `systemd-analyze verify` on deploy/authd.service;
#  5. `nginx -t` on deploy/nginx.conf, then real requests through nginx to authd (TLS, redirect,
#     X-Forwarded-For, /metrics refused, the revocation feed streaming through the proxy);
#  6. `caddy validate` on deploy/Caddyfile, then the same requests through Caddy.
#
# A tool that is not installed is reported as SKIP (Debian: `apt-get install nginx-light caddy`);
# any failed check ends the script with status 1. Needs PostgreSQL (AUTHD_TEST_DATABASE_SERVER,
# default postgres://postgres@127.0.0.1:5432, a role allowed to create databases): the script
# creates one database of its own and drops it at the end. Run as root (it switches users).
#
#   bash deploy/check.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
server=${AUTHD_TEST_DATABASE_SERVER:-postgres://postgres@127.0.0.1:5432}
target_dir=${CHECK_TARGET_DIR:-${CARGO_TARGET_DIR:-$repo/target}}
# Every server started here stops by itself after this long, even if this script is killed.
server_lifetime=600
nonroot_uid=65532 # distroless's `nonroot` user and group

work=$(mktemp -d /tmp/authd-deploy-check.XXXXXX)
chmod 0755 "$work"
database="authd_deploycheck_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
pids=()
failures=0

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" \
        >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
skip() { echo "SKIP  $*"; }
check() { # check "description" command...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls `curl ARGS` until it answers HTTP 200, for at most $1 seconds, and no longer than the
# most recently started background process lives.
wait_for_200() {
    local deadline=$((SECONDS + $1)) server=$!
    shift
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$@" || true)" = 200 ]; do
        [ $SECONDS -lt $deadline ] && kill -0 "$server" 2>/dev/null || return 1
        sleep 0.2
    done
}

# ---- 1. static checks -------------------------------------------------------------------------
echo "== static checks"
python3 - "$repo" <<'EOF' || failures=$((failures + 1))
import pathlib, re, sys, tomllib
import yaml

repo = pathlib.Path(sys.argv[1])
ok = True

def check(what, cond):
    global ok
    print(("PASS  " if cond else "FAIL  ") + what)
    ok &= bool(cond)

rust_version = tomllib.loads((repo / "Cargo.toml").read_text())["package"]["rust-version"]
dockerfile = (repo / "Dockerfile").read_text()
builder = re.search(r"^FROM rust:([0-9.]+)-bookworm AS build$", dockerfile, re.M)
check(f"Dockerfile builds with rust:{rust_version} (Cargo.toml rust-version)",
      builder and builder.group(1) == rust_version)
check("Dockerfile builds with --release --locked", "cargo build --release --locked" in dockerfile)
runtime = dockerfile.split("\nFROM ")[-1]
bind = re.search(r"^ENV AUTHD_BIND=0\.0\.0\.0:(\d+)$", runtime, re.M)
expose = re.search(r"^EXPOSE (\d+)$", runtime, re.M)
check("the image listens on 0.0.0.0 at the port it EXPOSEs",
      bind and expose and bind.group(1) == expose.group(1))
check("the image runs as a non-root user", re.search(r"^USER nonroot", runtime, re.M))
check("the image has no HEALTHCHECK it cannot run (distroless)",
      "distroless" not in runtime.split("\n")[0] or not re.search(r"^HEALTHCHECK", runtime, re.M))
check("no secret is set in the image",
      not re.search(r"^(ENV|ARG) .*(DATABASE_URL|SECRET|PASSWORD|SMTP_URL)", dockerfile, re.M))

ignored = (repo / ".dockerignore").read_text().split()
for entry in ["target/", "**/node_modules", "authd-data/", ".env"]:
    check(f".dockerignore has {entry}", entry in ignored)

compose = yaml.safe_load((repo / "compose.yaml").read_text())
services = compose["services"]
db, migrate, authd = services["postgres"], services["migrate"], services["authd"]
check("compose: postgres:16 with a volume",
      db["image"] == "postgres:16" and any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"]))
check("compose: postgres has a healthcheck and publishes no port",
      "healthcheck" in db and "ports" not in db)
check("compose: migrate runs `migrate` once the database is healthy",
      migrate["command"] == ["migrate"]
      and migrate["depends_on"]["postgres"]["condition"] == "service_healthy")
check("compose: authd starts after a successful migrate",
      authd["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
      and authd["depends_on"]["postgres"]["condition"] == "service_healthy")
env = authd["environment"]
check("compose: DATABASE_URL, AUTHD_ISSUER, AUTHD_ALLOWED_ORIGINS set",
      all(k in env for k in ["DATABASE_URL", "AUTHD_ISSUER", "AUTHD_ALLOWED_ORIGINS"]))
check("compose: migrate and authd share one configuration", migrate["environment"] == env)
check("compose: every published port is on the host's 127.0.0.1",
      all(str(p).startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", [])))
check("compose: no password written into the file",
      all("${" in str(v) for k, v in db["environment"].items() if "PASSWORD" in k)
      and "${POSTGRES_PASSWORD}" in env["DATABASE_URL"])
sys.exit(0 if ok else 1)
EOF
# rust-version must be at least what every dependency authd builds with declares (cargo refuses
# to build otherwise, so the Dockerfile's image would fail). Reads metadata only, builds nothing.
(cd "$repo" && cargo tree --locked -p authd -e normal,build --prefix none --format '{p}' 2>/dev/null \
    | python3 -c '
import json, subprocess, sys, tomllib
own = tomllib.load(open("Cargo.toml", "rb"))["package"]["rust-version"]
used = {tuple(line.split()[:2]) for line in sys.stdin if line.strip()}
meta = json.loads(subprocess.run(["cargo", "metadata", "--locked", "--format-version", "1"],
                                 check=True, capture_output=True).stdout)
key = lambda v: tuple(int(x) for x in (v.split(".") + ["0", "0"])[:3])
needs = max((key(p["rust_version"]), p["name"]) for p in meta["packages"]
            if p.get("rust_version") and (p["name"], "v" + p["version"]) in used)
ok = key(own) >= needs[0]
highest = ".".join(map(str, needs[0]))
print(("PASS  " if ok else "FAIL  ") + f"rust-version {own} covers the dependencies (the highest: "
      f"{needs[1]} needs {highest})")
sys.exit(0 if ok else 1)
') || failures=$((failures + 1))

# ---- 2. the Dockerfile's build stage ------------------------------------------------------------
echo "== Dockerfile build stage (replayed on the host)"
context="$work/build"
mkdir -p "$context"
# Turns the build stage into a shell script: WORKDIR is $context, COPY copies from the
# repository (a directory's contents, as Docker does), RUN runs with /bin/sh -c.
python3 - "$repo/Dockerfile" "$repo" "$context" >"$work/build-stage.sh" <<'EOF'
import re, shlex, sys
dockerfile, repo, context = sys.argv[1:]
text = re.sub(r"\\\n", " ", open(dockerfile).read())
lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
stage = []
for line in lines:
    if line.startswith("FROM ") and stage:
        break
    stage.append(line)
out = ["set -e"]
workdir = None
for line in stage[1:]:
    op, _, rest = line.partition(" ")
    if op == "WORKDIR":
        workdir = rest
        out.append(f"cd {shlex.quote(context)}")
    elif op == "COPY":
        *sources, dest = shlex.split(rest)
        to_dir = dest.endswith("/") or len(sources) > 1
        for src in sources:
            s = f"{repo}/{src}"
            d = f"{context}/{dest}"
            out.append(
                f'if [ -d {shlex.quote(s)} ]; then mkdir -p {shlex.quote(d)} && cp -a {shlex.quote(s)}/. {shlex.quote(d)}/; '
                + (f'else mkdir -p {shlex.quote(d)} && cp -a {shlex.quote(s)} {shlex.quote(d)}; fi'
                   if to_dir else
                   f'else mkdir -p "$(dirname {shlex.quote(d)})" && cp -a {shlex.quote(s)} {shlex.quote(d)}; fi'))
    elif op == "RUN":
        out.append(f"(cd {shlex.quote(context)} && /bin/sh -c {shlex.quote(rest)})")
    elif op == "ENV":
        out.append(f"export {rest}")
    else:
        sys.exit(f"deploy/check.sh cannot replay `{op}` in the build stage")
print("\n".join(out))
print(f"# WORKDIR={workdir}")
EOF
build_workdir=$(sed -n 's/^# WORKDIR=//p' "$work/build-stage.sh")
mkdir -p "$target_dir"
ln -s "$target_dir" "$context/target"
started=$SECONDS
if bash "$work/build-stage.sh" >"$work/build.log" 2>&1; then
    pass "build stage ($((SECONDS - started)) s, target dir $target_dir)"
else
    fail "build stage; last lines of its log:"
    tail -n 30 "$work/build.log"
    exit 1
fi

# ---- 3. the runtime stage: the binary as the image runs it ------------------------------------
echo "== runtime stage (uid $nonroot_uid, the image's ENV and WORKDIR)"
runtime=$(awk '/^FROM /{n++} n==2' "$repo/Dockerfile")
copy=$(grep -E '^COPY --from=build ' <<<"$runtime" | awk '{print $3, $4}')
read -r built installed <<<"$copy"
image_root="$work/image"
mkdir -p "$image_root$(dirname "$installed")"
install -m 0755 "$context${built#"$build_workdir"}" "$image_root$installed"
image_workdir=$(sed -n 's/^WORKDIR //p' <<<"$runtime")
mkdir -p "$image_root$image_workdir"
chown "$nonroot_uid:$nonroot_uid" "$image_root$image_workdir"
mapfile -t image_env < <(sed -n 's/^ENV //p' <<<"$runtime")
entrypoint=$(sed -n 's/^ENTRYPOINT //p' <<<"$runtime" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)))')
cmd=$(sed -n 's/^CMD //p' <<<"$runtime" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)))')
authd_bin="$image_root${entrypoint}"
port=$(free_port)

# Sets image_argv to the image's entrypoint with ARGS, run as the nonroot user in the image's
# WORKDIR with the image's environment plus DATABASE_URL, the loopback bind (port $port) and any
# NAME=value given before `--`. Run it in this shell ("${image_argv[@]}" &), not in a subshell:
# then $! is the process (timeout) that passes signals on to authd and returns its exit status.
image_command() {
    local extra=()
    while [ "$1" != -- ]; do extra+=("$1"); shift; done
    shift
    image_argv=(env -C "$image_root$image_workdir" -i PATH=/usr/bin:/bin
        HOME="$image_root$image_workdir" "${image_env[@]}" DATABASE_URL="$server/$database"
        AUTHD_BIND="127.0.0.1:$port" "${extra[@]}"
        setpriv --reuid=$nonroot_uid --regid=$nonroot_uid --clear-groups
        timeout -s KILL $server_lifetime "$authd_bin" "$@")
}

check "image ENV sets AUTHD_BIND=0.0.0.0:8080 (replaced here by 127.0.0.1:$port)" \
    grep -qx 'AUTHD_BIND=0.0.0.0:8080' <<<"$(printf '%s\n' "${image_env[@]}")"
image_command -- migrate
if "${image_argv[@]}" >"$work/migrate.log" 2>&1 && grep -q 'database is migrated' "$work/migrate.log"; then
    pass "\`authd migrate\` as uid $nonroot_uid (compose's one-shot service)"
else
    fail "\`authd migrate\`: $(tail -n 3 "$work/migrate.log")"
fi

# `serve` (the image's CMD) with AUTHD_ISSUER left at its default: its port (8080) is not the
# bind port, so the start-up warning must appear.
# shellcheck disable=SC2086 # CMD is one word
image_command -- $cmd
"${image_argv[@]}" >"$work/serve.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
if wait_for_200 60 "http://127.0.0.1:$port/readyz"; then
    pass "\`authd $cmd\` answers /readyz"
else
    fail "\`authd $cmd\` did not get ready: $(tail -n 5 "$work/serve.log")"
fi
authd_pid=$(pgrep -P "$serve_pid" || true)
check "the server runs as uid $nonroot_uid" \
    test "$(awk '/^Uid:/{print $2}' "/proc/$authd_pid/status" 2>/dev/null)" = "$nonroot_uid"
check "logs are JSON lines (stdout is not a terminal)" \
    python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")] or sys.exit(1)' "$work/serve.log"
check "start-up warns that AUTHD_ISSUER's port (8080) is not AUTHD_BIND's ($port)" \
    grep -q "AUTHD_ISSUER (http://localhost:8080) names port 8080 but AUTHD_BIND listens on port $port" "$work/serve.log"
check "the development outbox is created in the working directory" \
    test -d "$image_root$image_workdir/outbox"
kill -TERM "$serve_pid" 2>/dev/null || true # timeout passes it on to authd
status=0
wait "$serve_pid" || status=$?
check "SIGTERM ends \`authd $cmd\` with exit status 0 (got $status)" test "$status" = 0

# ---- 4. systemd unit --------------------------------------------------------------------------
echo "== systemd unit"
if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart's binary to exist: point it at the one just built.
    mkdir -p "$work/systemd"
    sed "s#/usr/local/bin/authd#$authd_bin#" "$repo/deploy/authd.service" >"$work/systemd/authd.service"
    if systemd-analyze verify "$work/systemd/authd.service" >"$work/verify.log" 2>&1 \
        && ! grep -q . "$work/verify.log"; then
        pass "systemd-analyze verify deploy/authd.service"
    else
        fail "systemd-analyze verify deploy/authd.service:"
        cat "$work/verify.log"
    fi
    exposure=$(systemd-analyze security --offline=yes "$work/systemd/authd.service" 2>/dev/null \
        | sed -n 's/.*Overall exposure level for authd.service: //p')
    echo "INFO  systemd-analyze security: overall exposure $exposure"
else
    skip "systemd-analyze not installed"
fi

# ---- 5 and 6. reverse proxies ------------------------------------------------------------------
# authd as it runs behind a proxy (deploy/authd.env.example), as the image's user.
proxied_port=$(free_port)
metrics_port=$(free_port)
resource_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
start_proxied_authd() {
    port=$proxied_port image_command AUTHD_ISSUER=https://auth.example.test \
        AUTHD_TRUST_FORWARDED_FOR=true AUTHD_METRICS_BIND="127.0.0.1:$metrics_port" \
        AUTHD_RESOURCE_SECRET="$resource_secret" -- serve
    "${image_argv[@]}" >"$work/proxied.log" 2>&1 &
    pids+=("$!")
    wait_for_200 60 "http://127.0.0.1:$proxied_port/readyz"
}

# The requests a deployment depends on, through a proxy at https://auth.example.test:$1 whose
# certificate is signed by the CA in $2; $3 names the proxy in the report, $4 its plain-HTTP port.
through_proxy() {
    local https_port=$1 ca=$2 name=$3 http_port=$4
    local base="https://auth.example.test:$https_port"
    local c=(curl -s --cacert "$ca" --resolve "auth.example.test:$https_port:127.0.0.1")
    local email="deploy-$name-$RANDOM@example.test" password="correct horse battery staple 42"
    local code location
    read -r code location < <(curl -s -o /dev/null -w '%{http_code} %{redirect_url}\n' \
        -H 'Host: auth.example.test' "http://127.0.0.1:$http_port/auth/me")
    local redirects=no
    case "$code $location" in "301 https://auth.example.test"* | "308 https://auth.example.test"*) redirects=yes ;; esac
    check "$name: plain HTTP redirects to https ($code $location)" test $redirects = yes
    check "$name: GET /healthz over TLS" \
        test "$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/healthz")" = 200
    check "$name: /metrics is refused at the edge" \
        test "$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/metrics")" = 404
    check "$name: /metrics answers on AUTHD_METRICS_BIND" \
        test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/metrics")" = 200
    # A client-supplied X-Forwarded-For must not become the client IP authd records.
    local spoof=(-H 'X-Forwarded-For: 203.0.113.7' -H 'Content-Type: application/json')
    local body="{\"email\":\"$email\",\"password\":\"$password\"}"
    "${c[@]}" -o /dev/null "${spoof[@]}" -d "$body" "$base/auth/register"
    local token
    token=$("${c[@]}" "${spoof[@]}" -d "$body" "$base/auth/login" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' || true)
    local ip
    ip=$("${c[@]}" -H "Authorization: Bearer $token" "$base/auth/sessions" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"][0]["ip"])' || true)
    check "$name: authd records the client the proxy saw (127.0.0.1), not a spoofed X-Forwarded-For (got $ip)" \
        test "$ip" = 127.0.0.1
    # The revocation feed streams through the proxy: a logout arrives as an event.
    : >"$work/$name.sse"
    "${c[@]}" -N --max-time 30 -H "Authorization: Bearer $resource_secret" \
        "$base/auth/revocations" >>"$work/$name.sse" &
    local sse_pid=$!
    local deadline=$((SECONDS + 10))
    until grep -q '^event: ready' "$work/$name.sse"; do
        [ $SECONDS -lt $deadline ] || break
        sleep 0.1
    done
    "${c[@]}" -o /dev/null -X POST -H "Authorization: Bearer $token" "$base/auth/logout"
    local session_id
    session_id=$(python3 -c 'import base64,json,sys; p=sys.argv[1].split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["sid"])' "$token" || true)
    deadline=$((SECONDS + 5))
    local seen=no
    while [ $SECONDS -lt $deadline ]; do
        if python3 - "$work/$name.sse" "$session_id" <<'EOF'; then seen=yes; break; fi
import base64, json, sys
path, sid = sys.argv[1:]
for line in open(path):
    if line.startswith("data: ") and line.count(".") == 2:
        p = line[6:].split(".")[1]
        if sid and sid in json.dumps(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))):
            sys.exit(0)
sys.exit(1)
EOF
        sleep 0.1
    done
    kill "$sse_pid" 2>/dev/null || true
    wait "$sse_pid" 2>/dev/null || true
    check "$name: the revocation feed delivers a logout through the proxy within 5 s" test $seen = yes
}

proxies_ready=no
if command -v nginx >/dev/null || command -v caddy >/dev/null; then
    echo "== authd behind the proxies (AUTHD_ISSUER=https://auth.example.test)"
    if start_proxied_authd; then
        proxies_ready=yes
        check "an https AUTHD_ISSUER gives no port warning" \
            bash -c "! grep -q 'names port' '$work/proxied.log'"
    else
        fail "authd for the proxy checks did not start: $(tail -n 5 "$work/proxied.log")"
    fi
fi

echo "== nginx"
if command -v nginx >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=auth.example.test -addext subjectAltName=DNS:auth.example.test \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
    chmod 0644 "$work/key.pem"
    https_port=$(free_port)
    http_port=$(free_port)
    # The site file with this machine's ports and a throwaway certificate; every replacement
    # must match, so the check notices when deploy/nginx.conf changes shape.
    python3 - "$repo/deploy/nginx.conf" "$work/authd-site.conf" <<EOF
import sys
text = open(sys.argv[1]).read()
for old, new in [
    ("listen 80;", "listen 127.0.0.1:$http_port;"),
    ("listen [::]:80;", ""),
    ("listen 443 ssl http2;", "listen 127.0.0.1:$https_port ssl http2;"),
    ("listen [::]:443 ssl http2;", ""),
    ("server 127.0.0.1:8080;", "server 127.0.0.1:$proxied_port;"),
    ("server_name auth.example.com;", "server_name auth.example.test;"),
    ("/etc/letsencrypt/live/auth.example.com/fullchain.pem", "$work/cert.pem"),
    ("/etc/letsencrypt/live/auth.example.com/privkey.pem", "$work/key.pem"),
]:
    if old not in text:
        sys.exit(f"deploy/nginx.conf no longer contains {old!r}")
    text = text.replace(old, new)
open(sys.argv[2], "w").write(text)
EOF
    mkdir -p "$work/nginx"
    chmod 0777 "$work/nginx"
    cat >"$work/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events {}
http {
    access_log $work/nginx/access.log;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    include $work/authd-site.conf;
}
EOF
    if nginx -t -q -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx.conf" 2>"$work/nginx-t.log"; then
        pass "nginx -t with deploy/nginx.conf ($(nginx -v 2>&1 | sed 's/.*: //'))"
        if [ $proxies_ready = yes ]; then
            timeout $server_lifetime nginx -p "$work/nginx" -e "$work/nginx/error.log" \
                -c "$work/nginx.conf" 2>>"$work/nginx/error.log" &
            pids+=("$!")
            if wait_for_200 10 --cacert "$work/cert.pem" \
                --resolve "auth.example.test:$https_port:127.0.0.1" "https://auth.example.test:$https_port/healthz"; then
                through_proxy "$https_port" "$work/cert.pem" nginx "$http_port"
            else
                fail "nginx did not start: $(tail -n 5 "$work/nginx/error.log")"
            fi
        fi
    else
        fail "nginx -t: $(cat "$work/nginx-t.log")"
    fi
else
    skip "nginx not installed (apt-get install nginx-light)"
fi

echo "== Caddy"
if command -v caddy >/dev/null; then
    export XDG_DATA_HOME="$work/caddy/data" XDG_CONFIG_HOME="$work/caddy/config"
    if caddy validate --adapter caddyfile --config "$repo/deploy/Caddyfile" >"$work/caddy-validate.log" 2>&1; then
        pass "caddy validate deploy/Caddyfile ($(caddy version | cut -d' ' -f1))"
        if [ $proxies_ready = yes ]; then
            https_port=$(free_port)
            http_port=$(free_port)
            # The same site on this machine's ports, with a certificate from Caddy's own local
            # CA (never installed into the system's trust store).
            {
                echo "{"
                echo "	admin off"
                echo "	skip_install_trust"
                echo "	local_certs"
                echo "	http_port $http_port"
                echo "	https_port $https_port"
                echo "}"
                sed -e "s/^auth\.example\.com {/auth.example.test {/" \
                    -e "s/reverse_proxy 127\.0\.0\.1:8080/reverse_proxy 127.0.0.1:$proxied_port/" \
                    "$repo/deploy/Caddyfile"
            } >"$work/Caddyfile"
            if grep -q "^auth.example.test {" "$work/Caddyfile" && grep -q "127.0.0.1:$proxied_port" "$work/Caddyfile"; then
                timeout $server_lifetime caddy run --adapter caddyfile --config "$work/Caddyfile" \
                    >"$work/caddy.log" 2>&1 &
                pids+=("$!")
                ca="$XDG_DATA_HOME/caddy/pki/authorities/local/root.crt"
                deadline=$((SECONDS + 20))
                until [ -f "$ca" ] && curl -sf -o /dev/null --cacert "$ca" \
                    --resolve "auth.example.test:$https_port:127.0.0.1" "https://auth.example.test:$https_port/healthz"; do
                    [ $SECONDS -lt $deadline ] || break
                    sleep 0.2
                done
                if [ -f "$ca" ]; then
                    through_proxy "$https_port" "$ca" caddy "$http_port"
                else
                    fail "caddy did not start: $(tail -n 5 "$work/caddy.log")"
                fi
            else
                fail "deploy/Caddyfile no longer has the site or upstream the check rewrites"
            fi
        fi
    else
        fail "caddy validate: $(cat "$work/caddy-validate.log")"
    fi
else
    skip "caddy not installed (apt-get install caddy)"
fi

echo
if [ $failures -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
