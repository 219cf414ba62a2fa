#!/usr/bin/env python3
"""Query benchmark of the data layer against DuckDB and psql, in one invocation.

Run by scripts/bench-analytics.sh, which builds the release canvas-server, provides a
PostgreSQL and a Python with the `duckdb` wheel, and passes:

  run.py --server BIN --work DIR --pg-url postgres://.../postgres [--rows N] [--reps R]

What it does, in order:
  1. Generates one data set with DuckDB (N rows, deterministic: ids 0..N-1 hashed into
     region, product, amount, quantity, order_date) and writes it as CSV and as Parquet.
  2. Starts our server (embedded default, a fresh data folder) and, over REST, signs up,
     creates a project, uploads both files as `file` sources (tables sales_csv and
     sales_parquet), loads the same CSV into a fresh PostgreSQL database (psql \\copy) and
     adds it as a `database` source (table sales).
  3. For each query (group by + sum, filter + count, top-N) and each format, alternates
     R+1 runs of ours (POST /queries/{id}/execute {fresh: true}: HTTP round trip, the job,
     the result written to the cache) with R+1 runs of DuckDB (in this process, the same SQL
     over read_csv / read_parquet views of the same files, threads = the machine's cores);
     the first run of each is a warm-up and not counted (ours is reported as "first run":
     it reads the file while the server loads the decoded table behind it). DuckDB also
     runs each query on a table it loaded into its own memory once (the like-for-like peer
     of our decoded-table cache). Medians are reported.
  4. Cache hits: the same execute without `fresh` (answered from the result cache), 50 times
     per query: median and p99 round trip against the median execution.
  5. PostgreSQL push-down: the same three queries through the `database` source (ours) and
     through psql (`\\timing`, one session, the statements repeated), alternating.
Results: DIR/results.json and a Markdown table on stdout (ratios ours / peer).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

import duckdb

QUERIES = {
    "group by + sum": "SELECT region, sum(amount) AS total, count(*) AS orders "
    "FROM {t} GROUP BY region ORDER BY region",
    "filter + count": "SELECT count(*) AS n FROM {t} "
    "WHERE amount > 500 AND quantity >= 25 AND order_date >= DATE '2024-07-01'",
    "top-N": "SELECT product, sum(amount * quantity) AS revenue FROM {t} "
    "GROUP BY product ORDER BY revenue DESC, product LIMIT 10",
}

CACHE_HITS = 50


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Api:
    """A REST client on one kept-alive HTTP/1.1 connection, as a real client keeps one (a
    new connection per call would time Python's connection setup, not the server)."""

    def __init__(self, base):
        self.base = base
        self.token = None
        self.conn = None

    def call(self, method, path, body=None, raw=None, content_type="application/json"):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {}
        if data is not None:
            headers["content-type"] = content_type
        if self.token:
            headers["authorization"] = "Bearer " + self.token
        for attempt in (0, 1):
            if self.conn is None:
                url = urllib.parse.urlsplit(self.base)
                self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
            try:
                self.conn.request(method, "/api/v1" + path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (http.client.HTTPException, OSError):
                # the server closed the kept-alive connection: one retry on a new one
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return resp.status, json.loads(payload or b"null")

    def ok(self, method, path, body=None, **kw):
        status, out = self.call(method, path, body, **kw)
        if status >= 300:
            sys.exit(f"{method} {path}: {status} {out}")
        return out


def generate(work, rows):
    csv_path = os.path.join(work, "sales.csv")
    parquet_path = os.path.join(work, "sales.parquet")
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE sales AS SELECT
              i AS id,
              'region_' || (hash(i) % 20) AS region,
              'product_' || (hash(i * 7) % 500) AS product,
              CAST((hash(i * 13) % 100000) AS DOUBLE) / 100.0 AS amount,
              CAST(hash(i * 17) % 50 AS BIGINT) + 1 AS quantity,
              DATE '2024-01-01' + CAST(hash(i * 19) % 365 AS INTEGER) AS order_date
            FROM range({rows}) t(i)"""
    )
    con.execute(f"COPY sales TO '{csv_path}' (HEADER, DELIMITER ',')")
    con.execute(f"COPY sales TO '{parquet_path}' (FORMAT parquet)")
    con.close()
    return csv_path, parquet_path


def start_server(binary, work):
    port = free_port()
    data = os.path.join(work, "server-data")
    shutil.rmtree(data, ignore_errors=True)
    log = open(os.path.join(work, "server.log"), "w")
    proc = subprocess.Popen(
        [binary, "--bind", f"127.0.0.1:{port}", "--data-dir", data,
         "--rest-rate-limit", "1000000", "--execute-wait-ms", "600000",
         "--query-timeout-secs", "600", "--max-upload-bytes", str(4 << 30),
         "--executions-per-project", "8", "--log", "warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return proc, base
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("canvas-server did not start; see " + log.name)
            time.sleep(0.05)


def upload(api, project, name, path, content_type):
    src = api.ok("POST", f"/projects/{project}/data-sources", {"name": name, "type": "file"})
    with open(path, "rb") as f:
        body = f.read()
    started = time.perf_counter()
    out = api.ok("PUT", f"/data-sources/{src['id']}/file", raw=body, content_type=content_type)
    return src["id"], time.perf_counter() - started, out


def ours_once(api, query_id, fresh):
    started = time.perf_counter()
    status, out = api.call("POST", f"/queries/{query_id}/execute", {"fresh": fresh})
    elapsed = time.perf_counter() - started
    if status != 200 or out["execution"]["status"] != "completed":
        sys.exit(f"execute {query_id}: {status} {out}")
    return elapsed, out


def median_ms(xs):
    return statistics.median(xs) * 1000


def p99_ms(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))] * 1000


def psql_times(pg_url, sqls):
    """Runs the statements in one psql session with \\timing; returns the times in seconds."""
    script = "\\timing on\n" + "".join(s + ";\n" for s in sqls)
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", pg_url],
                         input=script, capture_output=True, text=True, check=True).stdout
    times = [float(m) / 1000 for m in re.findall(r"^Time: ([0-9.]+) ms", out, re.M)]
    if len(times) != len(sqls):
        sys.exit(f"psql printed {len(times)} timings for {len(sqls)} statements:\n{out}")
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--pg-url", required=True, help="an admin URL (database postgres)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    cores = os.cpu_count()

    print(f"generating {args.rows:,} rows (CSV and Parquet) with DuckDB ...", file=sys.stderr)
    csv_path, parquet_path = generate(args.work, args.rows)
    sizes = {"csv": os.path.getsize(csv_path), "parquet": os.path.getsize(parquet_path)}

    db = "canvas_bench_" + uuid.uuid4().hex[:10]
    admin = args.pg_url
    subprocess.run(["psql", "-X", "-q", admin, "-c", f"CREATE DATABASE {db}"], check=True)
    pg_db_url = admin.rsplit("/", 1)[0] + "/" + db
    proc = None
    try:
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", pg_db_url, "-c",
             "CREATE TABLE sales (id bigint, region text, product text, amount double precision,"
             " quantity bigint, order_date date)", "-c",
             f"\\copy sales FROM '{csv_path}' WITH (FORMAT csv, HEADER true)", "-c",
             "ANALYZE sales"], check=True)

        proc, base = start_server(args.server, args.work)
        api = Api(base)
        signup = api.ok("POST", "/auth/signup", {
            "email": "bench@example.com", "username": "bench",
            "password": "a long benchmark passphrase 7"})
        api.token = signup["token"]
        project = api.ok("POST", "/projects", {"name": "bench"})["id"]
        _, csv_upload_s, _ = upload(api, project, "sales_csv", csv_path, "text/csv")
        _, pq_upload_s, _ = upload(api, project, "sales_parquet", parquet_path,
                                   "application/vnd.apache.parquet")
        pg_src = api.ok("POST", f"/projects/{project}/data-sources", {
            "name": "sales_pg", "type": "database",
            "connection_config": {"url": pg_db_url}})["id"]
        api.ok("POST", f"/data-sources/{pg_src}/sync")

        duck = duckdb.connect()
        duck.execute(f"SET threads = {cores}")
        duck.execute(f"CREATE VIEW sales_csv AS SELECT * FROM read_csv('{csv_path}')")
        duck.execute(f"CREATE VIEW sales_parquet AS SELECT * FROM read_parquet('{parquet_path}')")
        # The like-for-like peer of our decoded-table cache: DuckDB with the rows in its own
        # memory (a table loaded once), not read from the file each time.
        duck.execute(f"CREATE TABLE sales_csv_mem AS SELECT * FROM read_csv('{csv_path}')")
        duck.execute(f"CREATE TABLE sales_parquet_mem AS SELECT * FROM read_parquet('{parquet_path}')")

        results = {"rows": args.rows, "reps": args.reps, "cores": cores,
                   "duckdb": duckdb.__version__, "file_bytes": sizes,
                   "upload_s": {"csv": csv_upload_s, "parquet": pq_upload_s},
                   "files": [], "cache": [], "postgres": []}

        for fmt in ("parquet", "csv"):
            table = f"sales_{fmt}"
            for label, template in QUERIES.items():
                sql = template.format(t=table)
                qid = api.ok("POST", f"/projects/{project}/queries",
                             {"name": f"{label} {fmt}", "query_text": sql,
                              "query_type": "sql"})["id"]
                mem_sql = template.format(t=f"{table}_mem")
                ours, peer, peer_mem, server_ms = [], [], [], []
                answer, first_ms = None, None
                for rep in range(args.reps + 1):
                    t, out = ours_once(api, qid, True)
                    started = time.perf_counter()
                    duck_rows = duck.execute(sql).fetchall()
                    d = time.perf_counter() - started
                    started = time.perf_counter()
                    duck.execute(mem_sql).fetchall()
                    d_mem = time.perf_counter() - started
                    if rep == 0:
                        # the first query of this file's rows on this server may read the
                        # file (the decoded table loads behind it): reported on its own
                        answer, first_ms = out, t * 1000
                        continue
                    ours.append(t)
                    peer.append(d)
                    peer_mem.append(d_mem)
                    server_ms.append(out["execution"]["execution_time_ms"])
                ours_rows = answer["result"]["rows"]
                if len(ours_rows) != len(duck_rows):
                    sys.exit(f"{label} {fmt}: {len(ours_rows)} rows, DuckDB {len(duck_rows)}")
                row = {"format": fmt, "query": label, "ours_ms": median_ms(ours),
                       "ours_server_ms": statistics.median(server_ms),
                       "ours_first_ms": first_ms,
                       "duckdb_ms": median_ms(peer), "duckdb_mem_ms": median_ms(peer_mem)}
                row["ratio"] = row["ours_ms"] / row["duckdb_ms"]
                row["ratio_mem"] = row["ours_ms"] / row["duckdb_mem_ms"]
                results["files"].append(row)
                print(json.dumps(row), file=sys.stderr)

                hits = []
                for _ in range(CACHE_HITS):
                    t, out = ours_once(api, qid, False)
                    if not out["execution"]["from_cache"]:
                        sys.exit(f"{label} {fmt}: expected an answer from the cache")
                    hits.append(t)
                hit = {"format": fmt, "query": label, "hit_median_ms": median_ms(hits),
                       "hit_p99_ms": p99_ms(hits), "execution_ms": row["ours_ms"]}
                hit["ratio"] = hit["hit_median_ms"] / hit["execution_ms"]
                results["cache"].append(hit)
                print(json.dumps(hit), file=sys.stderr)

        for label, template in QUERIES.items():
            sql = template.format(t="sales")
            qid = api.ok("POST", f"/projects/{project}/queries",
                         {"name": f"{label} pg", "query_text": sql, "query_type": "sql",
                          "data_source_id": pg_src})["id"]
            ours, peer = [], []
            for rep in range(args.reps + 1):
                t, _ = ours_once(api, qid, True)
                p = psql_times(pg_db_url, [sql])[0]
                if rep == 0:
                    continue
                ours.append(t)
                peer.append(p)
            row = {"query": label, "ours_ms": median_ms(ours), "psql_ms": median_ms(peer)}
            row["ratio"] = row["ours_ms"] / row["psql_ms"]
            results["postgres"].append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["psql", "-X", "-q", admin, "-c", f"DROP DATABASE IF EXISTS {db}"])

    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    report(results)


def report(r):
    print(f"\n{r['rows']:,} rows; CSV {r['file_bytes']['csv'] / 1e6:.1f} MB, Parquet "
          f"{r['file_bytes']['parquet'] / 1e6:.1f} MB; medians of {r['reps']} runs after a "
          f"warm-up; DuckDB {r['duckdb']} with {r['cores']} threads\n")
    print("| file | query | ours (REST round trip) | ours (engine) | DuckDB on the file | "
          "ours / DuckDB | DuckDB, table in memory | ours / that | ours, first run |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for x in r["files"]:
        print(f"| {x['format']} | {x['query']} | {x['ours_ms']:.1f} ms | "
              f"{x['ours_server_ms']:.0f} ms | {x['duckdb_ms']:.1f} ms | {x['ratio']:.2f}x | "
              f"{x['duckdb_mem_ms']:.1f} ms | {x['ratio_mem']:.2f}x | "
              f"{x['ours_first_ms']:.1f} ms |")
    print("\n| file | query | cache hit median | cache hit p99 | execution | hit / execution |")
    print("|---|---|---:|---:|---:|---:|")
    for x in r["cache"]:
        print(f"| {x['format']} | {x['query']} | {x['hit_median_ms']:.2f} ms | "
              f"{x['hit_p99_ms']:.2f} ms | {x['execution_ms']:.1f} ms | {x['ratio']:.3f}x |")
    print("\n| PostgreSQL push-down | ours (REST round trip) | psql (\\timing) | ours / psql |")
    print("|---|---:|---:|---:|")
    for x in r["postgres"]:
        print(f"| {x['query']} | {x['ours_ms']:.1f} ms | {x['psql_ms']:.1f} ms | "
              f"{x['ratio']:.2f}x |")


if __name__ == "__main__":
    main()
