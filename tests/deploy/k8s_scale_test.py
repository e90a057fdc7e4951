#!/usr/bin/env python3
"""The scheduler, configured as deploy/ configures it, scales the expert StatefulSet through a
Kubernetes API that enforces the manifests' own RBAC.

Renders deploy/base, takes the scheduler's MOE_* environment (its ConfigMaps), the Role bound to
its ServiceAccount, the expert StatefulSet's name and the namespace; starts a fake Kubernetes
API server on 127.0.0.1 over HTTPS (a self-signed certificate made with openssl) that answers
GET/PATCH on /apis/apps/v1/namespaces/NS/statefulsets/NAME/scale only with the service-account
token and only when that Role grants the verb on the resource and name (403 otherwise), and
holds the replica count (1, as a StatefulSet created without `replicas` has); then runs
`moe scheduler` with that environment (the API address, token, CA and namespace pointed at the
fake, as the pod's service account would give them). Within the bound, the scheduler must read
the scale and patch it to MOE_MIN_EXPERTS, with no request refused; SIGTERM then stops it with
exit code 0. Exit 77 when kubectl or openssl is absent.
Usage: k8s_scale_test.py --moe BIN --model DIR --deploy DIR
"""
import argparse
import http.server
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import yaml

TOKEN = "test-service-account-token"


def allowed(rules, group, resource, name, verb):
    for r in rules:
        if (group in r.get("apiGroups", []) and resource in r.get("resources", []) and
                verb in r.get("verbs", []) and
                ("resourceNames" not in r or name in r["resourceNames"])):
            return True
    return False


class FakeApi(http.server.BaseHTTPRequestHandler):
    rules = []
    replicas = {}
    log = []  # (verb, path, status, body)
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def answer(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_verb(self, verb):
        body = b""
        if "Content-Length" in self.headers:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        m = re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/statefulsets/([^/]+)/scale",
                         self.path)
        status = 200
        with self.lock:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status = 401
            elif m is None:
                status = 404
            elif not allowed(self.rules, "apps", "statefulsets/scale", m.group(2), verb):
                status = 403
            elif (m.group(1), m.group(2)) not in self.replicas:
                status = 404
            elif verb == "patch":
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    status = 415
                else:
                    self.replicas[(m.group(1), m.group(2))] = \
                        json.loads(body)["spec"]["replicas"]
            self.log.append((verb, self.path, status, body.decode()))
            if status != 200:
                return self.answer(status, {"kind": "Status", "code": status,
                                            "message": f"{verb} {self.path}: {status}"})
            n = self.replicas[(m.group(1), m.group(2))]
        self.answer(200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                          "metadata": {"name": m.group(2), "namespace": m.group(1)},
                          "spec": {"replicas": n}, "status": {"replicas": n}})

    def do_GET(self):
        self.handle_verb("get")

    def do_PATCH(self):
        self.handle_verb("patch")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moe", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--deploy", required=True)
    a = ap.parse_args()
    for tool in ("kubectl", "openssl"):
        if shutil.which(tool) is None:
            print(f"{tool} not installed: skipped")
            return 77
    rendered = subprocess.run(["kubectl", "kustomize", os.path.join(a.deploy, "base")],
                              capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    objs = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    sched = objs[("Deployment", "moe-scheduler")]
    pod = sched["spec"]["template"]["spec"]
    namespace = sched["metadata"]["namespace"]
    env = {}
    for src in pod["containers"][0]["envFrom"]:
        env.update(objs[("ConfigMap", src["configMapRef"]["name"])]["data"])
    sa = pod["serviceAccountName"]
    rules = []
    for (kind, _), rb in objs.items():
        if kind == "RoleBinding" and any(s["name"] == sa for s in rb["subjects"]):
            rules += objs[("Role", rb["roleRef"]["name"])]["rules"]
    statefulset = env["MOE_K8S_STATEFULSET"]
    assert ("StatefulSet", statefulset) in objs, statefulset
    want = int(env["MOE_MIN_EXPERTS"])
    assert env.get("MOE_ELASTIC") == "true" and env.get("MOE_PROVIDER") == "kubernetes", env

    tmp = tempfile.mkdtemp(prefix="moe-k8s-")
    server = None
    proc = None
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem"],
            check=True, capture_output=True)
        with open(f"{tmp}/token", "w") as f:
            f.write(TOKEN)
        FakeApi.rules = rules
        FakeApi.replicas = {(namespace, statefulset): 1}
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(f"{tmp}/cert.pem", f"{tmp}/key.pem")
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]

        run_env = {k: v for k, v in os.environ.items() if not k.startswith("MOE_")}
        run_env.update(env)
        run_env.update({
            "MOE_HOST": "127.0.0.1", "MOE_PORT": "0", "MOE_ADMIN_PORT": "0",
            "MOE_MODEL": a.model, "MOE_LOG_LEVEL": "warn",
            # What the pod's service account and KUBERNETES_SERVICE_* would provide.
            "MOE_K8S_API_SERVER": f"https://127.0.0.1:{port}",
            "MOE_K8S_TOKEN_FILE": f"{tmp}/token", "MOE_K8S_CA_FILE": f"{tmp}/cert.pem",
            "MOE_K8S_NAMESPACE": namespace})
        proc = subprocess.Popen([a.moe, "scheduler"], env=run_env, stdout=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 20
        scaled = False
        while time.monotonic() < deadline and not scaled:
            if proc.poll() is not None:
                sys.exit(f"moe scheduler exited with {proc.returncode}")
            with FakeApi.lock:
                scaled = FakeApi.replicas[(namespace, statefulset)] == want
                if any(entry[2] != 200 for entry in FakeApi.log):
                    break  # refused: no need to wait for retries
            time.sleep(0.1)
        with FakeApi.lock:
            log = list(FakeApi.log)
        for verb, path, status, body in log:
            print(f"{verb.upper():5} {path} -> {status} {body}")
        refused = [entry for entry in log if entry[2] != 200]
        ok = True
        if not scaled:
            print(f"FAIL: the scheduler did not scale {statefulset} to {want}")
            ok = False
        if refused:
            print(f"FAIL: {len(refused)} requests refused (RBAC or token)")
            ok = False
        if not any(v == "get" for v, *_ in log):
            print("FAIL: the scheduler never read the scale")
            ok = False
    finally:
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(5)
        if server is not None:
            server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    if code != 0:
        print(f"FAIL: moe scheduler exited with {code} after SIGTERM")
        ok = False
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
