#!/usr/bin/env python3
"""Refresh + /auth/me load against authd while Postgres is stopped and started (pg_restart.sh).

Each worker owns one session: it refreshes in a loop, keeping its current refresh token (on a
503 it keeps the old one, as a browser would), and calls /auth/me with its access token.
Writes one CSV line per request: t_ms,kind,status,code,latency_ms,worker.
Stdlib only."""
import csv, http.client, json, sys, threading, time

base_host, base_port = sys.argv[1], int(sys.argv[2])
workers, seconds, out = int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
EMAIL, PASSWORD = "load@faults.test", "a load test passphrase"
t0 = time.monotonic()
rows, lock = [], threading.Lock()


def call(method, path, body=None, headers=None, timeout=15):
    conn = http.client.HTTPConnection(base_host, base_port, timeout=timeout)
    h = {"content-type": "application/json"} if body is not None else {}
    h.update(headers or {})
    started = time.monotonic()
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, h)
        res = conn.getresponse()
        data = res.read()
        return res.status, res.getheader("set-cookie"), data, (time.monotonic() - started) * 1000
    except Exception as e:  # a hang shows up as a timeout here
        return 0, None, str(e).encode(), (time.monotonic() - started) * 1000
    finally:
        conn.close()


def cookie_value(set_cookie):
    return set_cookie.split(";")[0].split("=", 1)[1] if set_cookie else None


def record(kind, status, data, ms, worker):
    code = ""
    if status >= 400:
        try:
            code = json.loads(data)["code"]
        except Exception:
            code = "?"
    with lock:
        rows.append([round((time.monotonic() - t0) * 1000), kind, status, code, round(ms, 1), worker])


def worker(i):
    status, sc, data, _ = call("POST", "/auth/login", {"email": EMAIL, "password": PASSWORD})
    assert status == 200, (status, data)
    token, access = cookie_value(sc), json.loads(data)["access_token"]
    while time.monotonic() - t0 < seconds:
        status, sc, data, ms = call("POST", "/auth/refresh", headers={"cookie": f"authd_refresh={token}"})
        record("refresh", status, data, ms, i)
        if status == 200:
            token, access = cookie_value(sc), json.loads(data)["access_token"]
        status, _, data, ms = call("GET", "/auth/me", headers={"authorization": f"Bearer {access}"})
        record("me", status, data, ms, i)
        time.sleep(0.05)


call("POST", "/auth/register", {"email": EMAIL, "password": PASSWORD})
threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(out, "w", newline="") as f:
    csv.writer(f).writerows(rows)
