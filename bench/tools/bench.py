#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python standard library only).

  gen-rotate SQL HEAD OUT     pgbench script from src/db/sql/rotate.sql (authd's refresh statement)
  pool ...                    log in N times, write refresh-token pool files + an access token
  cpusnap ...                 one JSON line: CPU ticks of processes, their Postgres backends, machine
  mem PID                     "VmRSS_kB VmHWM_kB" of a process
  pct FILES...                percentiles of pgbench -l logs
  account ...                 statements and round trips per request (refresh, me, login)
  revocation ...              revocation visibility delay between two instances
  report OUT [--readme F]     summary.md from a results directory (and the README section)
  keep FILE TITLE SUMMARY     add a run's summary to bench/SUMMARY.md (raw outputs are not committed)
"""
import argparse
import base64
import glob
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-XtAq"]


# --------------------------------------------------------------------------------------------
# gen-rotate


def gen_rotate(args):
    lines = [l for l in open(args.sql).read().splitlines() if not l.lstrip().startswith("--")]
    sql = "\n".join(lines).strip().rstrip(";")
    params = sorted(set(re.findall(r"\$\d+", sql)), key=lambda p: int(p[1:]))
    if params != list(ROTATE_PARAMS):
        sys.exit(f"gen-rotate: {args.sql} now uses parameters {params}, expected {list(ROTATE_PARAMS)};"
                 " update ROTATE_PARAMS in bench/tools/bench.py and bench/pgbench/rotate.head.sql")
    sql = re.sub(r"\$\d+", lambda m: ROTATE_PARAMS[m.group(0)], sql)
    head = open(args.head).read()
    with open(args.out, "w") as f:
        f.write(head)
        f.write(sql + "\n\\gset r_\n")


# What authd binds to the rotate statement (src/db/sessions.rs `rotate`), in pgbench form: the
# SHA-256 of the presented token and of its successor (computed by the server from chain keys,
# see pgbench/rotate.head.sql), the idle TTL and the access-token TTL in seconds.
ROTATE_PARAMS = {
    "$1": "sha256(int8send(:k))",
    "$2": "sha256(int8send(:k2))",
    "$3": ":ttl",
    "$4": ":access_ttl",
}


# --------------------------------------------------------------------------------------------
# HTTP helpers


class Client:
    def __init__(self, base, timeout=30):
        u = urllib.parse.urlparse(base)
        self.host, self.port, self.timeout = u.hostname, u.port or 80, timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if (r.getheader("Connection") or "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, r.getheaders(), data
            except (http.client.HTTPException, ConnectionError):
                self.conn = None
                if attempt:
                    raise


def grab(spec, headers, body):
    kind, name = spec.split(":", 1)
    if kind == "json":
        return json.loads(body)[name]
    for k, v in headers:
        if k.lower() == "set-cookie":
            m = re.match(re.escape(name) + r"=([^;]*)", v.strip())
            if m and m.group(1):
                return m.group(1)
    raise KeyError(f"cookie {name} not in response")


def login_many(base, path, bodies, n, refresh_spec, access_spec, threads=2, sid_field=None):
    """n logins in `threads` parallel keep-alive connections; returns [(refresh, access, sid)]."""
    out = [None] * n
    err = []

    def work(t):
        c = Client(base)
        for i in range(t, n, threads):
            body = bodies[i % len(bodies)]
            st, hd, data = c.request("POST", path, body=body,
                                     headers={"Content-Type": "application/json"})
            if st != 200:
                err.append(f"login {i}: HTTP {st} {data[:200]!r}")
                return
            sid = json.loads(data).get(sid_field) if sid_field else None
            out[i] = (grab(refresh_spec, hd, data) if refresh_spec else None,
                      grab(access_spec, hd, data), sid)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if err:
        sys.exit("; ".join(err[:3]))
    return out


def pool(args):
    bodies = [args.body.replace("{email}", e) for e in args.emails.split(",")] if args.emails \
        else [args.body]
    files = args.files or []
    n = args.per_file * len(files) + 1
    res = login_many(args.base, args.login_path, bodies, n, args.refresh, args.access,
                     threads=args.threads)
    refresh = [r[0] for r in res[:-1]]
    assert len(set(refresh)) == len(refresh), "duplicate refresh tokens"
    for k, f in enumerate(files):
        with open(f, "w") as fh:
            fh.write("\n".join(refresh[k * args.per_file:(k + 1) * args.per_file]) + "\n")
    if args.access_out:
        with open(args.access_out, "w") as fh:
            fh.write(res[-1][1] + "\n")
    print(f"pool: {n} logins -> {len(files)} files of {args.per_file} refresh tokens"
          + (f", access token -> {args.access_out}" if args.access_out else ""))


# --------------------------------------------------------------------------------------------
# process and Postgres counters


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [int(x) for x in out.split()]


def backend_pids(db):
    q = (f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' "
         "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
    out = subprocess.run(PSQL + ["-c", q], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def machine():
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts[:8]), idle


def cpusnap(args):
    procs = {}
    for p in args.pid:
        procs[str(p)] = ticks(p)
        if args.children:
            for c in children(p):
                procs[str(c)] = ticks(c)
    pg = {str(p): ticks(p) for p in backend_pids(args.db)} if args.db else {}
    total, idle = machine()
    print(json.dumps({"t": time.time(), "procs": procs, "pg": pg, "cpu_total": total,
                      "cpu_idle": idle, "hz": os.sysconf("SC_CLK_TCK")}))


def mem(args):
    vals = {}
    with open(f"/proc/{args.pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0])
    print(vals["VmRSS"], vals["VmHWM"])


def pct(args):
    lat = []
    for fn in args.files:
        with open(fn) as fh:
            for line in fh:
                p = line.split()
                if len(p) >= 3 and p[2].isdigit():
                    lat.append(int(p[2]))
    lat.sort()
    if not lat:
        print("LOGLAT n=0")
        return
    q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] / 1000
    print(f"LOGLAT n={len(lat)} p50_ms={q(0.50):.3f} p90_ms={q(0.90):.3f} "
          f"p99_ms={q(0.99):.3f} max_ms={lat[-1] / 1000:.3f}")


def main_pool_ports(db, app="authd"):
    q = (f"SELECT client_port FROM pg_stat_activity WHERE datname = '{db}' "
         f"AND application_name = '{app}'")
    out = subprocess.run(PSQL + ["-c", q], capture_output=True, text=True).stdout
    return {int(x) for x in out.split() if x.strip().lstrip("-").isdigit()}


def db_segments(pid, ports=None):
    """Data segments that a process's sockets to Postgres sent / received, per local port
    (only ports in `ports` when given)."""
    out = subprocess.run(["ss", "-tinpH", "state", "established", "( dport = :5432 )"],
                         capture_output=True, text=True).stdout
    res, cur = {}, None
    for line in out.splitlines():
        if "users:(" in line:
            cur = None
            if f"pid={pid}," in line:
                local = line.split()[2]
                port = int(local.rsplit(":", 1)[1])
                if ports is None or port in ports:
                    cur = local
        elif cur is not None:
            so = re.search(r"\bdata_segs_out:(\d+)", line)
            si = re.search(r"\bdata_segs_in:(\d+)", line)
            res[cur] = (int(so.group(1)) if so else 0, int(si.group(1)) if si else 0)
            cur = None
    return res


def xact(db):
    q = f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{db}'"
    return int(subprocess.run(PSQL + ["-c", q], capture_output=True, text=True).stdout.strip())


def account(args):
    """Statements and database round trips per request, from sequential requests over one
    keep-alive connection.
    - statements: transactions of the database in pg_stat_database (each statement of authd runs
      in its own implicit transaction), minus the background rate (heartbeats and the like of
      every running instance) measured over an idle window first;
    - round trips: data segments Postgres sent to authd's main pool sockets (application_name
      'authd'; Postgres flushes once per Sync, i.e. once per round trip), and segments authd
      wrote (client writes), minus the idle rate too."""
    mint = Client(args.mint or args.base)
    c = Client(args.base)
    body = json.dumps({"email": args.email, "password": args.password})
    st, hd, data = mint.request("POST", "/auth/login", body=body,
                                headers={"Content-Type": "application/json"})
    assert st == 200, (st, data)
    cookie = grab("cookie:authd_refresh", hd, data)
    access = json.loads(data)["access_token"]

    def snap():
        time.sleep(args.flush_wait)  # idle backends flush their statistics within 10 s
        ports = main_pool_ports(args.db)
        segs = db_segments(args.pid, ports)
        return {"t": time.time(), "xact": xact(args.db),
                "out": sum(s[0] for s in segs.values()), "in": sum(s[1] for s in segs.values()),
                "sockets": len(segs)}

    def do_refresh():
        nonlocal cookie
        st, hd, data = c.request("POST", "/auth/refresh",
                                 headers={"Cookie": f"authd_refresh={cookie}"})
        assert st == 200, (st, data)
        cookie = grab("cookie:authd_refresh", hd, data)

    def do_me():
        st, _, data = c.request("GET", "/auth/me", headers={"Authorization": f"Bearer {access}"})
        assert st == 200, (st, data)

    def do_login():
        st, _, data = c.request("POST", "/auth/login", body=body,
                                headers={"Content-Type": "application/json"})
        assert st == 200, (st, data)

    def delta(a, b):
        return {k: b[k] - a[k] for k in ("t", "xact", "out", "in")}

    # Warm-up: every pool connection prepares each statement once (Parse/Describe: an extra
    # round trip and transaction); sequential acquires cycle through all idle connections.
    for _ in range(args.warmup):
        do_refresh()
        do_me()
    for _ in range(args.login_warmup if args.logins else 0):
        do_login()
    s0 = snap()
    s1 = snap()
    idle = delta(s0, s1)
    rate = {k: idle[k] / idle["t"] for k in ("xact", "out", "in")}
    res = {"background_per_s": {"statements": rate["xact"], "round_trips": rate["in"],
                                "writes": rate["out"]}}
    before = s1
    scen = [("refresh", do_refresh, args.n), ("me", do_me, args.n)]
    if args.logins:
        scen.append(("login", do_login, args.logins))
    for name, fn, n in scen:
        for _ in range(n):
            fn()
        after = snap()
        d = delta(before, after)
        res[name] = {"n": n,
                     "statements": (d["xact"] - rate["xact"] * d["t"]) / n,
                     "round_trips": (d["in"] - rate["in"] * d["t"]) / n,
                     "writes": (d["out"] - rate["out"] * d["t"]) / n,
                     "raw": d, "pool_sockets": after["sockets"]}
        before = after
    print(json.dumps(res))


def memdetail(args):
    """Threads, and the glibc malloc arenas (64 MiB heap mappings) with their resident size."""
    status = open(f"/proc/{args.pid}/status").read()
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    arenas, arena_rss, big, big_rss = 0, 0, 0, 0
    cur_size = None
    with open(f"/proc/{args.pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                cur_size = (hi - lo) // 1024
                parts = line.split()
                cur_anon = len(parts) < 6 or parts[5] == "[heap]"
            elif line.startswith("Rss:") and cur_size is not None and cur_anon:
                r = int(line.split()[1])
                if cur_size >= 8 * 1024:
                    big += 1
                    big_rss += r
                cur_size = None
    print(f"threads={threads} rss_kB={rss} anon_mappings_ge_8MiB={big} their_rss_kB={big_rss}")


def revocation(args):
    body = json.dumps({"email": args.email, "password": args.password})
    sessions = login_many(args.a, "/auth/login", [body], args.n, None, "json:access_token",
                          threads=2, sid_field="session_id")
    a, b = Client(args.a), Client(args.b)
    delays, delays_send, polls, rtts, codes = [], [], [], [], {}
    for _, access, sid in sessions:
        auth = {"Authorization": f"Bearer {access}"}
        t = time.perf_counter()
        st, _, _ = a.request("GET", "/auth/me", headers=auth)
        rtts.append((time.perf_counter() - t) * 1e3)
        assert st == 200, f"A /auth/me before revocation: {st}"
        t_send = time.perf_counter()
        st, _, data = b.request("DELETE", f"/auth/sessions/{sid}", headers=auth)
        t_ack = time.perf_counter()
        assert st == 204, f"B DELETE /auth/sessions: {st} {data[:200]!r}"
        k = 0
        while True:
            k += 1
            st, _, data = a.request("GET", "/auth/me", headers=auth)
            if st == 401:
                code = json.loads(data).get("code")
                codes[code] = codes.get(code, 0) + 1
                break
            assert st == 200, f"A /auth/me while polling: {st}"
            if time.perf_counter() - t_ack > args.give_up:
                codes["timeout"] = codes.get("timeout", 0) + 1
                break
            time.sleep(args.poll_ms / 1000)
        t_seen = time.perf_counter()
        delays.append((t_seen - t_ack) * 1e3)
        delays_send.append((t_seen - t_send) * 1e3)
        polls.append(k)
    q = lambda v, p: sorted(v)[min(len(v) - 1, int(p * len(v)))]
    res = {"n": len(delays), "poll_ms": args.poll_ms, "codes": codes,
           "delay_ms": {"p50": q(delays, .5), "p99": q(delays, .99), "max": max(delays)},
           "delay_from_send_ms": {"p50": q(delays_send, .5), "p99": q(delays_send, .99)},
           "polls": {"p50": q(polls, .5), "max": max(polls)},
           "me_rtt_ms": {"p50": q(rtts, .5), "p99": q(rtts, .99)},
           "raw_delay_ms": [round(d, 3) for d in delays]}
    print(json.dumps(res))


# --------------------------------------------------------------------------------------------
# revocation feed (GET /auth/revocations): revoke -> SET on a subscriber

class FeedReader(threading.Thread):
    """Reads A's revocation feed (SSE) and records when each session's SET arrived."""

    def __init__(self, base, secret):
        super().__init__(daemon=True)
        u = urllib.parse.urlparse(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.secret = secret
        self.seen = {}  # sid -> perf_counter() of arrival
        self.ready = threading.Event()
        self.cond = threading.Condition()

    def run(self):
        self.conn.request("GET", "/auth/revocations",
                          headers={"Authorization": f"Bearer {self.secret}"})
        r = self.conn.getresponse()
        assert r.status == 200, f"feed: {r.status}"
        event, data = None, []
        for raw in r:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "":
                if event == "ready":
                    self.ready.set()
                elif event == "revocation" and data:
                    payload = data[0].split(".")[1]
                    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
                    with self.cond:
                        self.seen.setdefault(claims["sid"], time.perf_counter())
                        self.cond.notify_all()
                event, data = None, []

    def wait_for(self, sid, give_up):
        end = time.perf_counter() + give_up
        with self.cond:
            while sid not in self.seen:
                left = end - time.perf_counter()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.seen[sid]


def feed(args):
    reader = FeedReader(args.a, args.secret)
    reader.start()
    assert reader.ready.wait(30), "the feed sent no ready"
    body = json.dumps({"email": args.email, "password": args.password})
    sessions = login_many(args.b, "/auth/login", [body], args.n, None, "json:access_token",
                          threads=2, sid_field="session_id")
    clients = {"A": Client(args.a), "B": Client(args.b)}
    delays = {"A": [], "B": []}
    missing = 0
    for i, (_, access, sid) in enumerate(sessions):
        via = "A" if i % 2 == 0 else "B"  # revoked through the subscribed instance, or the other
        st, _, data = clients[via].request("DELETE", f"/auth/sessions/{sid}",
                                           headers={"Authorization": f"Bearer {access}"})
        t_ack = time.perf_counter()
        assert st == 204, f"{via} DELETE /auth/sessions: {st} {data[:200]!r}"
        t_seen = reader.wait_for(sid, args.give_up)
        if t_seen is None:
            missing += 1
            continue
        delays[via].append(max(0.0, (t_seen - t_ack) * 1e3))
    q = lambda v, p: sorted(v)[min(len(v) - 1, int(p * len(v)))] if v else None
    res = {"n": args.n, "missing": missing}
    for via, v in delays.items():
        res[f"revoked_via_{via}"] = {"n": len(v), "p50_ms": q(v, .5), "p99_ms": q(v, .99),
                                     "max_ms": max(v) if v else None}
    print(json.dumps(res))


# --------------------------------------------------------------------------------------------
# report

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def dur_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * UNIT[m.group(2)] if m else None


def parse_wrk(path):
    t = open(path).read()
    r = {"file": os.path.basename(path)}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", t, re.M)
    r["rps"] = float(m.group(1)) if m else 0.0
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", t, re.M)
        r[f"p{p}"] = dur_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    r["sockerr"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"^LUA (.*)$", t, re.M)
    lua = dict(kv.split("=") for kv in m.group(1).split()) if m else {}
    r["lua"] = {k: int(v) for k, v in lua.items()}
    m = re.search(r"(\d+) requests in", t)
    r["requests"] = int(m.group(1)) if m else 0
    problems = []
    if not m:
        problems.append("no wrk summary")
    if r["non2xx"]:
        problems.append(f"{r['non2xx']} non-2xx")
    if r["sockerr"]:
        problems.append(f"{r['sockerr']} socket errors")
    for k in ("bad", "ok_without_new_token", "pool_empty"):
        if lua.get(k, "0") != "0":
            problems.append(f"{k}={lua[k]}")
    if "ok" not in lua:
        problems.append("no LUA line")
    elif int(lua["ok"]) == 0:
        problems.append("0 successful requests")
    r["problems"] = problems
    return r


def parse_pgbench(path):
    t = open(path).read()
    r = {"file": os.path.basename(path)}
    m = re.search(r"tps = ([\d.]+) \(without", t)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"p50_ms=([\d.]+) p90_ms=([\d.]+) p99_ms=([\d.]+)", t)
    r["p50"], r["p99"] = (float(m.group(1)), float(m.group(3))) if m else (None, None)
    m = re.search(r"latency average = ([\d.]+) ms", t)
    r["avg"] = float(m.group(1)) if m else None
    m = re.search(r"number of transactions actually processed: (\d+)", t)
    r["requests"] = int(m.group(1)) if m else 0
    problems = []
    m = re.search(r"number of failed transactions: (\d+)", t)
    if not m or int(m.group(1)):
        problems.append("failed transactions" if m else "no pgbench summary")
    if re.search(r"aborted|PGBENCH_EXIT", t):
        problems.append("client aborted (a token was not consumable)")
    r["problems"] = problems
    return r


def cpu_per_req(out, name, nreq):
    path = os.path.join(out, "cpu", name + ".json")
    if not os.path.exists(path) or not nreq:
        return None
    lines = [json.loads(l) for l in open(path) if l.strip()]
    if len(lines) < 2:
        return None
    a, b = lines[0], lines[1]
    us = 1e6 / a["hz"]
    proc = sum((v or 0) - (a["procs"].get(k) or 0) for k, v in b["procs"].items() if v is not None)
    pg = sum((v or 0) - (a["pg"].get(k) or 0) for k, v in b["pg"].items() if v is not None)
    dt, di = b["cpu_total"] - a["cpu_total"], b["cpu_idle"] - a["cpu_idle"]
    return {"server_us": proc * us / nreq, "pg_us": pg * us / nreq,
            "busy": (dt - di) / dt if dt else None}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def group(out, kind, pattern):
    """Runs of one scenario, with medians; pattern globs names under wrk/ or pgbench/."""
    files = sorted(glob.glob(os.path.join(out, kind, pattern)))
    parse = parse_wrk if kind == "wrk" else parse_pgbench
    runs = [parse(f) for f in files]
    for r in runs:
        r["cpu"] = cpu_per_req(out, r["file"].rsplit(".", 1)[0], r["requests"])
    if not runs:
        return None
    g = {"runs": runs, "n": len(runs),
         "rps": median(r["rps"] for r in runs), "p50": median(r["p50"] for r in runs),
         "p99": median(r["p99"] for r in runs),
         "invalid": [f"{r['file']}: {', '.join(r['problems'])}" for r in runs if r["problems"]]}
    cpus = [r["cpu"] for r in runs if r["cpu"]]
    if cpus:
        g["server_us"] = median(c["server_us"] for c in cpus)
        g["pg_us"] = median(c["pg_us"] for c in cpus)
        g["busy"] = median(c["busy"] for c in cpus)
    return g


def kv_file(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line and not line.startswith("#"):
                k, v = line.strip().split("=", 1)
                d[k] = v
    return d


def fmt(x, nd=0):
    if x is None:
        return "n/a"
    if isinstance(x, float) and nd == 0 and abs(x) < 10:
        nd = 2
    return f"{x:,.{nd}f}"


def report(args):
    out = args.out
    env = kv_file(os.path.join(out, "params.txt"))
    invalid, rows, notes = [], [], []

    def ratio(a, b):
        return a / b if a is not None and b else None

    def verdict(r, lo=None, hi=None):
        if r is None:
            return "n/a"
        ok = (lo is None or r >= lo) and (hi is None or r <= hi)
        return "**met**" if ok else "**missed**"

    def runs_txt(g):
        return "/".join(fmt(r["rps"]) for r in g["runs"])

    def row(fig, ours, ref_name, ref, r, target, v):
        rows.append(f"| {fig} | {ours} | {ref_name} | {ref} | {fmt(r, 2) if r is not None else 'n/a'}"
                    f" | {target} | {v} |")

    groups = {}

    def G(key, kind, pattern):
        g = group(out, kind, pattern)
        groups[key] = g
        if g:
            invalid.extend(g["invalid"])
        return g

    # 1. refresh
    conns = [int(c) for c in env.get("REFRESH_CONNS", "16 64").split()]
    for c in conns:
        a = G(f"refresh{c}", "wrk", f"authd-refresh-c{c}-r*.txt")
        p = G(f"pg{c}", "pgbench", f"rotate-c{c}-r*.txt")
        d = G(f"drfrefresh{c}", "wrk", f"drf-refresh-c{c}-r*.txt")
        if a and p:
            r = ratio(a["rps"], p["rps"])
            row(f"1. refresh req/s, {c} conns", f"{fmt(a['rps'])} ({runs_txt(a)})",
                f"pgbench `rotate` -M prepared, {c} clients", f"{fmt(p['rps'])} ({runs_txt(p)})",
                r, "≥ 0.5 (stretch 0.65)",
                verdict(r, 0.5) + (" (stretch met)" if r and r >= 0.65 else ""))
            row(f"1. refresh p50 / p99 ms, {c} conns", f"{fmt(a['p50'], 2)} / {fmt(a['p99'], 2)}",
                f"pgbench `rotate`, {c} clients (p50 / p99)",
                f"{fmt(p['p50'], 2)} / {fmt(p['p99'], 2)}", ratio(a["p99"], p["p99"]),
                "(p99 ratio, info)", "info")
        if a and d:
            r = ratio(a["rps"], d["rps"])
            row(f"1. refresh req/s vs peer, {c} conns", fmt(a["rps"]),
                f"DRF + simplejwt refresh, {c} conns", f"{fmt(d['rps'])} ({runs_txt(d)})", r,
                "≥ 7", verdict(r, 7))
    # 2. me
    me = G("me", "wrk", "authd-me-c*-r*.txt")
    hello = G("hello", "wrk", "hello-mejwt-c*-r*.txt")
    drfme = G("drfme", "wrk", "drf-me-c*-r*.txt")
    drfmedb = G("drfmedb", "wrk", "drf-medb-c*-r*.txt")
    mc = env.get("ME_CONNS", "32")
    if me and hello:
        r = ratio(me["rps"], hello["rps"])
        row(f"2. GET /auth/me req/s, {mc} conns", f"{fmt(me['rps'])} ({runs_txt(me)})",
            "floor: axum + EdDSA verify of the same token (hello /me-jwt)",
            f"{fmt(hello['rps'])} ({runs_txt(hello)})", r, "≥ 0.85", verdict(r, 0.85))
        row(f"2. GET /auth/me p50 / p99 ms, {mc} conns", f"{fmt(me['p50'], 2)} / {fmt(me['p99'], 2)}",
            "floor p50 / p99", f"{fmt(hello['p50'], 2)} / {fmt(hello['p99'], 2)}",
            ratio(me["p99"], hello["p99"]), "(p99 ratio, info)", "info")
    if me and drfme:
        r = ratio(me["rps"], drfme["rps"])
        row("2. GET /auth/me req/s vs peer", fmt(me["rps"]),
            "DRF + simplejwt protected GET, JWT only", f"{fmt(drfme['rps'])} ({runs_txt(drfme)})",
            r, "≥ 7", verdict(r, 7))
    if me and drfmedb:
        r = ratio(me["rps"], drfmedb["rps"])
        row("2. GET /auth/me req/s vs peer (DB)", fmt(me["rps"]),
            "DRF + simplejwt protected GET, JWT + user SELECT",
            f"{fmt(drfmedb['rps'])} ({runs_txt(drfmedb)})", r, "(info)", "info")
    # 3. login
    argon = []
    for f in sorted(glob.glob(os.path.join(out, "argon2", "single-r*.txt"))):
        m = re.search(r"verify median ([\d.]+) ms", open(f).read())
        if m:
            argon.append(float(m.group(1)))
    pair = []
    pf = os.path.join(out, "argon2", "pair.txt")
    if os.path.exists(pf):
        pair = [float(x) for x in re.findall(r"verify median ([\d.]+) ms", open(pf).read())]
    cores = int(env.get("NPROC", "2"))
    verify_ms = median(argon)
    ceiling = cores / verify_ms * 1e3 if verify_ms else None
    login = G("login", "wrk", "authd-login-c*-r*.txt")
    lc = env.get("LOGIN_CONNS", "16")
    if login:
        r = ratio(login["rps"], ceiling)
        row(f"3. POST /auth/login req/s, {lc} conns", f"{fmt(login['rps'], 1)} ({runs_txt(login)})",
            f"argon2 ceiling = {cores} cores ÷ {fmt(verify_ms, 2)} ms verify (argon2b, "
            f"runs {'/'.join(fmt(x, 2) for x in argon)})", fmt(ceiling, 1), r, "≥ 0.8",
            verdict(r, 0.8))
        qb = int(lc) / ceiling * 1e3 if ceiling else None
        row(f"3. POST /auth/login p50 / p99 ms, {lc} conns",
            f"{fmt(login['p50'], 1)} / {fmt(login['p99'], 1)}",
            "queueing bound: conns ÷ ceiling", fmt(qb, 1), ratio(login["p99"], qb),
            "(p99 ratio, info)", "info")
    sme = G("storm_me", "wrk", "storm-me-c*-r*.txt")
    slog = G("storm_login", "wrk", "storm-login-c*-r*.txt")
    if sme and me:
        r = ratio(sme["p99"], me["p99"])
        row("3. /auth/me p99 ms during login storm", fmt(sme["p99"], 2),
            "/auth/me p99 without the storm (scenario 2)", fmt(me["p99"], 2), r, "≤ 5",
            verdict(r, None, 5))
        row("3. /auth/me req/s during login storm", fmt(sme["rps"]), "without the storm",
            fmt(me["rps"]), ratio(sme["rps"], me["rps"]), "(info)", "info")
    if slog and ceiling:
        row("3. login req/s during the storm", fmt(slog["rps"], 1), "argon2 ceiling",
            fmt(ceiling, 1), ratio(slog["rps"], ceiling), "(info)", "info")
    # 4. revocation
    rv = None
    rf = os.path.join(out, "revocation.json")
    if os.path.exists(rf):
        rv = json.load(open(rf))
        d = rv["delay_ms"]
        r = ratio(d["p99"], 1000.0)
        row(f"4. revocation visible on A, p50 / p99 ms (n={rv['n']}, poll {rv['poll_ms']} ms)",
            f"{fmt(d['p50'], 2)} / {fmt(d['p99'], 2)} (max {fmt(d['max'], 2)})",
            "API.md limit (p99 ratio); A's /auth/me RTT p50 for scale",
            f"1000 ; RTT {fmt(rv['me_rtt_ms']['p50'], 2)}", r, "p99 ≤ 1000 ms",
            verdict(r, None, 1.0))
        if rv["codes"].get("timeout"):
            invalid.append(f"revocation: {rv['codes']['timeout']} never became 401")
    # 5. memory
    m = kv_file(os.path.join(out, "memory.txt"))
    mib = lambda k: int(m[k]) / 1024 if k in m else None
    if m:
        idle = mib("authd_idle_rss_kB")
        row("5. RSS idle MiB", fmt(idle, 1), "floor server idle RSS / target 30 MiB",
            f"{fmt(mib('hello_idle_rss_kB'), 1)} / 30", ratio(idle, 30.0), "≤ 30 MiB (ratio to target)",
            verdict(idle, None, 30) if idle is not None else "n/a")
        for k, label in (("authd_peak_refresh_kB", "refresh loads"), ("authd_peak_me_kB", "/auth/me loads")):
            v = mib(k)
            ref = mib("hello_peak_me_kB")
            row(f"5. RSS peak MiB under {label}", fmt(v, 1),
                "floor server peak under its /me-jwt load / target 150 MiB",
                f"{fmt(ref, 1)} / 150", ratio(v, 150.0), "≤ 150 MiB (ratio to target)",
                verdict(v, None, 150) if v is not None else "n/a")
        v = mib("authd_peak_login_kB")
        if v is not None:
            row("5. RSS peak MiB under login loads (login + storm)", fmt(v, 1), "target 150 MiB", "150",
                ratio(v, 150.0), "≤ 150 MiB (ratio to target)", verdict(v, None, 150))
        v = mib("authd_final_rss_kB")
        if v is not None:
            row("5. RSS after all loads, idle (info)", fmt(v, 1), "idle at start", fmt(idle, 1),
                ratio(v, idle), "(info)", "info")
        md = os.path.join(out, "memory-detail.txt")
        if os.path.exists(md):
            notes.append("Memory detail of instance A (at start / after the /auth/me loads / after the "
                         "login loads): " + " ; ".join(l.strip() for l in open(md) if l.strip()))
    # protocol accounting
    acc = None
    af = os.path.join(out, "accounting.json")
    if os.path.exists(af):
        acc = json.load(open(af))
        for k, label, ref in (("refresh", "POST /auth/refresh", "pgbench `rotate`: 1 statement, 1 round trip"),
                              ("me", "GET /auth/me", "floor server: 0 (API.md: no DB query per request)"),
                              ("login", "POST /auth/login", "(info; argon2 dominates)")):
            if k in acc:
                a = acc[k]
                row(f"statements / DB round trips per {label} (n={a['n']})",
                    f"{fmt(max(0.0, a['statements']), 2)} / {fmt(max(0.0, a['round_trips']), 2)}", "reference", ref,
                    None, "(info)", "info")
        bg = acc.get("background_per_s")
        if bg:
            notes.append(f"Background DB traffic while idle (subtracted above): {fmt(bg['statements'], 2)} "
                         f"statements/s in the database (all running instances), {fmt(bg['round_trips'], 2)} "
                         "round trips/s on A's request pool.")

    lines = []
    lines.append(f"Run `{env.get('STAMP', '?')}` ({env.get('MODE', '?')}), commit `{env.get('COMMIT', '?')}`"
                 f"{' (work tree dirty)' if env.get('DIRTY', '0') not in ('0', '') else ''};"
                 f" {env.get('REPS', '?')} runs of {env.get('DURATION', '?')} s per figure, medians;"
                 f" raw outputs (not committed) in `{os.path.relpath(out, args.rel) if args.rel else out}`.")
    lines.append("")
    lines.append(f"Machine: {env.get('MACHINE', '?')}. Load average at start {env.get('LOAD_START', '?')},"
                 f" at end {env.get('LOAD_END', '?')}.")
    if env.get("NOTE"):
        lines.append(f"Note: {env['NOTE']}")
    lines.append("")
    lines.append("| figure | authd (runs) | reference | reference value (runs) | ratio | target | verdict |")
    lines.append("|---|---|---|---|---|---|---|")
    lines += rows
    lines.append("")
    lines.append("CPU per request (from /proc, median of runs; server = the HTTP server's own process(es),"
                 " PG = its Postgres backends; busy = whole machine):")
    lines.append("")
    lines.append("| scenario | req/s | server µs/req | PG µs/req | server cores | PG cores | machine busy |")
    lines.append("|---|---|---|---|---|---|---|")
    for key, label in [(f"refresh{c}", f"authd refresh {c} conns") for c in conns] + \
                      [(f"drfrefresh{c}", f"DRF refresh {c} conns") for c in conns] + \
                      [("me", "authd /auth/me"), ("hello", "floor /me-jwt"), ("drfme", "DRF GET JWT only"),
                       ("drfmedb", "DRF GET JWT + user"), ("login", "authd login")]:
        g = groups.get(key)
        if g and "server_us" in g:
            lines.append(f"| {label} | {fmt(g['rps'])} | {fmt(g['server_us'], 1)} | {fmt(g['pg_us'], 1)}"
                         f" | {g['server_us'] * g['rps'] / 1e6:.2f} | {g['pg_us'] * g['rps'] / 1e6:.2f}"
                         f" | {fmt(100 * g['busy'], 0) if g['busy'] is not None else 'n/a'}% |")
    lines.append("")
    for n in notes:
        lines.append(n)
        lines.append("")
    if invalid:
        lines.append("**INVALID runs** (any non-200, socket error, missing token or aborted pgbench client):")
        lines += [f"- {x}" for x in invalid]
    else:
        lines.append("Validity: every authd/peer request of every run returned 200 (refresh: each with a "
                     "new cookie, pools never ran dry); every pgbench run finished with 0 failed and no "
                     "aborted client.")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    if args.readme:
        readme = open(args.readme).read()
        b, e = "<!-- results:begin -->", "<!-- results:end -->"
        if b in readme and e in readme:
            pre, rest = readme.split(b, 1)
            _, post = rest.split(e, 1)
            open(args.readme, "w").write(pre + b + "\n" + text + e + post)
    sys.exit(1 if invalid else 0)


# --------------------------------------------------------------------------------------------
# keep: raw outputs stay out of git (they hold host details); summaries are kept in one file


KEEP_MARKER = "<!-- summaries: newest first, added by bench/run.sh and bench/flood.sh -->"


def keep(args):
    text = open(args.file).read()
    if KEEP_MARKER not in text:
        sys.exit(f"keep: {args.file} has no line {KEEP_MARKER}")
    entry = f"## {args.title}\n\n{open(args.summary).read().strip()}"
    text = text.replace(KEEP_MARKER, f"{KEEP_MARKER}\n\n{entry}", 1)
    with open(args.file, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("gen-rotate")
    p.add_argument("sql"); p.add_argument("head"); p.add_argument("out")
    p.set_defaults(fn=gen_rotate)
    p = sp.add_parser("pool")
    p.add_argument("--base", required=True)
    p.add_argument("--login-path", default="/auth/login")
    p.add_argument("--body", required=True, help="JSON; {email} is replaced by each of --emails")
    p.add_argument("--emails")
    p.add_argument("--refresh", default="cookie:authd_refresh")
    p.add_argument("--access", default="json:access_token")
    p.add_argument("--per-file", type=int, default=128)
    p.add_argument("--files", nargs="*")
    p.add_argument("--access-out")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(fn=pool)
    p = sp.add_parser("cpusnap")
    p.add_argument("--pid", type=int, nargs="+", required=True)
    p.add_argument("--children", action="store_true")
    p.add_argument("--db")
    p.set_defaults(fn=cpusnap)
    p = sp.add_parser("mem")
    p.add_argument("pid", type=int)
    p.set_defaults(fn=mem)
    p = sp.add_parser("memdetail")
    p.add_argument("pid", type=int)
    p.set_defaults(fn=memdetail)
    p = sp.add_parser("pct")
    p.add_argument("files", nargs="*")
    p.set_defaults(fn=pct)
    p = sp.add_parser("account")
    p.add_argument("--base", required=True); p.add_argument("--pid", type=int, required=True)
    p.add_argument("--mint", help="instance to log in on (keeps argon2 off the measured one)")
    p.add_argument("--logins", type=int, default=20)
    p.add_argument("--warmup", type=int, default=100, help="refresh and me requests before counting")
    p.add_argument("--login-warmup", type=int, default=64)
    p.add_argument("--db", required=True)
    p.add_argument("--email", required=True); p.add_argument("--password", required=True)
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--flush-wait", type=float, default=11.0)
    p.set_defaults(fn=account)
    p = sp.add_parser("revocation")
    p.add_argument("--a", required=True); p.add_argument("--b", required=True)
    p.add_argument("--email", required=True); p.add_argument("--password", required=True)
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--poll-ms", type=float, default=1.0)
    p.add_argument("--give-up", type=float, default=5.0, help="seconds")
    p.set_defaults(fn=revocation)
    p = sp.add_parser("feed")
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--give-up", type=float, default=5.0)
    p.set_defaults(fn=feed)
    p = sp.add_parser("report")
    p.add_argument("out"); p.add_argument("--readme"); p.add_argument("--rel")
    p.set_defaults(fn=report)
    p = sp.add_parser("keep")
    p.add_argument("file"); p.add_argument("title"); p.add_argument("summary")
    p.set_defaults(fn=keep)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
