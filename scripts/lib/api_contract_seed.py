"""Seeds a fresh canvas-server for the Schemathesis run (scripts/lib/api_contract.sh) and
prints a schemathesis.toml that points each operation's path parameters at real resources,
so the generated requests reach the handlers' logic instead of stopping at 404.

Usage: api_contract_seed.py BASE_URL  (prints the config on stdout; its first line is a
comment with the bearer token of the seeded user, which owns everything)

Two of everything that can be deleted: DELETE operations get the second one ("victims"), so
the rest of the run keeps its resources for as long as it can (a PATCH may still archive
the project, which the document allows: the answers are then 403s).
"""

import json
import sys
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")


def call(method, path, token=None, body=None, raw=None, content_type="application/json"):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", content_type)
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as e:
        sys.exit(f"seeding: {method} {path} answered {e.code}: {e.read().decode()}")
    return json.loads(text) if text else None


def signup(name):
    answer = call("POST", "/api/v1/auth/signup", body={
        "email": f"{name}@example.com", "username": name, "password": "correct horse battery staple"})
    return answer["token"], answer["user"]["id"]


token, _ = signup("contract")
_, member = signup("contract-member")

CSV = b"region,amount\nnorth,10\nsouth,20\neast,7\n"


def project(name):
    p = call("POST", "/api/v1/projects", token, {"name": name})["id"]
    call("POST", f"/api/v1/projects/{p}/members", token, {"user_id": member, "role": "editor"})
    templates = call("GET", "/api/v1/templates", token)["templates"]
    template = next(t for t in templates if t["blocks"])
    canvas = call("POST", f"/api/v1/projects/{p}/canvases", token,
                  {"name": f"{name} canvas", "template_id": template["id"]})
    source = call("POST", f"/api/v1/projects/{p}/data-sources", token,
                  {"name": "sales", "type": "file"})["id"]
    call("PUT", f"/api/v1/data-sources/{source}/file", token, raw=CSV, content_type="text/csv")
    query = call("POST", f"/api/v1/projects/{p}/queries", token,
                 {"name": "sales", "query_text": "SELECT region, amount FROM sales"})["id"]
    execution = call("POST", f"/api/v1/queries/{query}/execute", token, {})["execution"]["id"]
    pipeline = call("POST", f"/api/v1/projects/{p}/pipelines", token,
                    {"name": "nightly", "source_id": source, "schedule_cron": "0 3 * * *"})["id"]
    webhook = call("POST", f"/api/v1/projects/{p}/webhooks", token, {
        "url": "http://127.0.0.1:9/hook", "events": ["canvas.updated"],
        "secret": "0123456789abcdef0123"})["id"]
    call("POST", f"/api/v1/canvases/{canvas['id']}/versions", token, {"changes": "seeded"})
    call("PUT", f"/api/v1/canvases/{canvas['id']}/sharing/permissions/{member}", token,
         {"role": "viewer"})
    call("POST", f"/api/v1/canvases/{canvas['id']}/sharing/public-link", token)
    call("PUT", f"/api/v1/canvases/{canvas['id']}/favorite", token)
    template_id = call("POST", "/api/v1/templates", token,
                       {"canvas_id": canvas["id"], "name": f"{name} template"})["id"]
    return {
        "project": p, "canvas": canvas["id"], "block": canvas["blocks"][0]["id"],
        "source": source, "query": query, "execution": execution, "pipeline": pipeline,
        "webhook": webhook, "template": template_id,
    }


keep = project("contract")
victim = project("contract-victim")


def section(regex, params, method=None):
    lines = ["[[operations]]", f"include-path-regex = {json.dumps(regex)}"]
    if method == "DELETE":
        lines.append('include-method = "DELETE"')
    elif method == "not DELETE":
        lines.append('exclude-method = "DELETE"')
    pairs = ", ".join(f"{json.dumps('path.' + k)} = {json.dumps(v)}" for k, v in params.items())
    lines.append(f"parameters = {{ {pairs} }}")
    return "\n".join(lines)


def sections(r):
    return {
        "^/api/v1/projects/\\{id\\}/": {"id": r["project"], "user_id": member,
                                        "webhook_id": r["webhook"]},
        "^/api/v1/canvases/\\{id\\}": {"id": r["canvas"], "block_id": r["block"],
                                       "user_id": member, "version": 1},
        "^/ws/\\{canvas_id\\}": {"canvas_id": r["canvas"]},
        "^/api/v1/data-sources/\\{id\\}": {"id": r["source"]},
        "^/api/v1/queries/\\{id\\}": {"id": r["query"]},
        "^/api/v1/executions/\\{id\\}": {"id": r["execution"]},
        "^/api/v1/pipelines/\\{id\\}": {"id": r["pipeline"]},
        "^/api/v1/templates/\\{id\\}": {"id": r["template"]},
    }


out = [f"# token: {token}\n# Generated by scripts/lib/api_contract_seed.py for one run"]
for regex, params in sections(keep).items():
    out.append(section(regex, params, "not DELETE"))
for regex, params in sections(victim).items():
    out.append(section(regex, params, "DELETE"))
# the project itself (a PATCH may archive it, making its canvases read-only): the victim
out.append(section("^/api/v1/projects/\\{id\\}$", {"id": victim["project"]}))
print("\n\n".join(out))
