#!/usr/bin/env python3
"""Offline validation of deploy/: every kustomize overlay renders; every rendered object
validates against the Kubernetes schemas of a pinned version (CRD kinds are checked by
cross-reference); yamllint; promtool check and unit tests of the alerts; every metric the
dashboard, alerts, adapter rule and KEDA trigger use is one a running server exports; probes,
ports and flags agree with the server's own defaults and its health service.

usage: deploy_test.py REPO_DIR BIN_DIR
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

import test_support

REPO, BIN_DIR = sys.argv[1], sys.argv[2]
DEPLOY = os.path.join(REPO, "deploy")
K8S_VERSION = "1.33.0"
RENDERED = ["overlays/cpu", "overlays/gpu", "examples/gpu-keda-tls"]
CRD_KINDS = {"PrometheusRule", "ServiceMonitor", "ScaledObject"}

check = test_support.Checks()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# yamllint over everything in deploy/.
r = run(["yamllint", "-c", os.path.join(DEPLOY, ".yamllint"), DEPLOY])
check(r.returncode == 0, f"yamllint: {r.stdout}{r.stderr}")

# Render and validate each overlay.
rendered = {}
for overlay in RENDERED:
    r = run(["kubectl", "kustomize", os.path.join(DEPLOY, "k8s", overlay)])
    check(r.returncode == 0, f"kubectl kustomize {overlay}: {r.stderr}")
    objects = [o for o in yaml.safe_load_all(r.stdout) if o]
    rendered[overlay] = objects
    with tempfile.TemporaryDirectory() as tmp:
        core = []
        for i, o in enumerate(objects):
            if o["kind"] in CRD_KINDS:
                continue
            path = os.path.join(tmp, f"{i}-{o['kind']}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(o, f)
            core.append(path)
        r = run(["kubernetes-validate", "--strict", "-k", K8S_VERSION, "--quiet", *core])
        check(r.returncode == 0, f"kubernetes-validate {overlay}: {r.stdout}{r.stderr}")
    kinds = {o["kind"] for o in objects}
    check(kinds - CRD_KINDS >= {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"},
          f"{overlay} renders the core objects: {kinds}")


def one(objects, kind):
    found = [o for o in objects if o["kind"] == kind]
    return found[0] if len(found) == 1 else None


# promtool on the alerts, and the PrometheusRule carries exactly the same groups.
rules = os.path.join(DEPLOY, "prometheus", "bptserve-alerts.yaml")
r = run(["promtool", "check", "rules", rules])
check(r.returncode == 0, f"promtool check rules: {r.stdout}{r.stderr}")
r = run(["promtool", "test", "rules", "bptserve-alerts.test.yaml"], cwd=os.path.join(DEPLOY, "prometheus"))
check(r.returncode == 0, f"promtool test rules: {r.stdout}{r.stderr}")
plain_groups = yaml.safe_load(open(rules))["groups"]
alert_names = {rule["alert"] for g in plain_groups for rule in g["rules"]}
tested = set(re.findall(r"alertname: (\w+)", open(os.path.join(DEPLOY, "prometheus", "bptserve-alerts.test.yaml")).read()))
check(alert_names == tested, f"every alert has unit tests: alerts {alert_names}, tested {tested}")
for overlay, objects in rendered.items():
    pr = one(objects, "PrometheusRule")
    check(pr is not None and pr["spec"]["groups"] == plain_groups, f"{overlay}: PrometheusRule equals {rules}")

# Start the server once: its metrics and its health service are what the manifests must match.
server, grpc_port, metrics_port = test_support.start_server(BIN_DIR, "--kv-capacity", "4096")
try:
    import urllib.request
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=60).read().decode()
    exported = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)", scrape, re.M):
        exported.add(name)
        if kind == "histogram":
            exported |= {name + "_bucket", name + "_sum", name + "_count"}

    # Every metric name the dashboard, alerts, autoscalers use is exported.
    def names_in(text):
        return set(re.findall(r"\bbptserve_[a-z0-9_]+", text))
    users = {
        "dashboard": open(os.path.join(DEPLOY, "grafana", "bptserve.json")).read(),
        "alerts": open(rules).read(),
        "prometheus-adapter": open(os.path.join(DEPLOY, "k8s", "prometheus-adapter", "rules.yaml")).read(),
    }
    for overlay, objects in rendered.items():
        for o in objects:
            if o["kind"] in {"HorizontalPodAutoscaler", "ScaledObject", "PrometheusRule"}:
                users[f"{overlay}/{o['kind']}"] = json.dumps(o)
    for user, text in users.items():
        used = names_in(text)
        check(used, f"{user} uses bptserve metrics")
        check(used <= exported, f"{user} uses metrics the server does not export: {sorted(used - exported)}")

    # The dashboard: a datasource variable, no hard-coded UIDs.
    dash = json.load(open(os.path.join(DEPLOY, "grafana", "bptserve.json")))
    uids = set(re.findall(r'"uid": "([^"]*)"', json.dumps(dash)))
    check(uids == {"${datasource}"}, f"dashboard datasource UIDs: {uids}")
    check(any(v["type"] == "datasource" for v in dash["templating"]["list"]), "dashboard has a datasource variable")

    # Probes, ports and flags against the server.
    options_h = open(os.path.join(REPO, "server", "server_options.h")).read()
    default_port = re.search(r"int port = (\d+);", options_h).group(1)
    default_metrics_port = re.search(r"int metrics_port = (\d+);", options_h).group(1)
    help_text = run([os.path.join(BIN_DIR, "bptserve"), "--help"]).stdout
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
    for overlay, objects in rendered.items():
        cm = one(objects, "ConfigMap")["data"]
        dep = one(objects, "Deployment")
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        check(cm["BPTSERVE_PORT"] == default_port == str(ports["grpc"]), f"{overlay}: gRPC port {cm['BPTSERVE_PORT']}")
        check(cm["BPTSERVE_METRICS_PORT"] == default_metrics_port == str(ports["metrics"]),
              f"{overlay}: metrics port {cm['BPTSERVE_METRICS_PORT']}")
        check(pod["terminationGracePeriodSeconds"] > float(cm["BPTSERVE_DRAIN_SECONDS"]),
              f"{overlay}: terminationGracePeriodSeconds must exceed --drain-seconds")
        for arg in c["args"]:
            flag = arg.split("=")[0]
            check(re.search(rf"(^|\s){re.escape(flag)}\b", help_text, re.M) is not None, f"{overlay}: server knows {flag}")
            for var in re.findall(r"\$\((\w+)\)", arg):
                check(var in cm, f"{overlay}: {arg} reads {var} from the ConfigMap")
        for var in cm:
            check(any(f"$({var})" in a for a in c["args"]), f"{overlay}: ConfigMap key {var} is used")
        for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = c[probe_name]
            if "grpc" in probe:
                check(str(probe["grpc"]["port"]) == cm["BPTSERVE_PORT"], f"{overlay}: {probe_name} port")
                service = probe["grpc"].get("service", "")
            else:  # exec probes (TLS): bptserve-cli health --service NAME
                cmd = probe["exec"]["command"]
                service = cmd[cmd.index("--service") + 1]
                check(f"localhost:{cm['BPTSERVE_PORT']}" in cmd, f"{overlay}: {probe_name} port")
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            except grpc.RpcError as e:  # NOT_FOUND: the server has no such health service
                status = e.code()
            check(status == health_pb2.HealthCheckResponse.SERVING,
                  f"{overlay}: {probe_name} service {service!r} is served by bptserve (got {status})")
        check(c["livenessProbe"].get("grpc", {}).get("service", "") == "" or "exec" in c["livenessProbe"],
              f"{overlay}: liveness is the '' service")
        check((c["readinessProbe"].get("grpc") or {}).get("service", "bptserve.v1.Inference") == "bptserve.v1.Inference",
              f"{overlay}: readiness is bptserve.v1.Inference")
        sc = c["securityContext"]
        check(sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"],
              f"{overlay}: hardened container")
        check(pod["securityContext"]["runAsNonRoot"], f"{overlay}: non-root")
        svc = one(objects, "Service")
        check({p["name"]: p.get("appProtocol") for p in svc["spec"]["ports"]}.get("grpc") == "grpc",
              f"{overlay}: Service gRPC port has appProtocol grpc")
        sm = one(objects, "ServiceMonitor")
        check(sm is not None and sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]},
              f"{overlay}: ServiceMonitor scrapes a Service port")
        so = one(objects, "ScaledObject")
        hpa = one(objects, "HorizontalPodAutoscaler")
        check((so is None) != (hpa is None), f"{overlay}: exactly one autoscaler (HPA or KEDA)")
        target = (so or hpa)["spec"]["scaleTargetRef"]["name"]
        check(target == dep["metadata"]["name"], f"{overlay}: the autoscaler scales the Deployment")
    gpu = one(rendered["overlays/gpu"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    check(gpu["resources"]["limits"].get("nvidia.com/gpu") == 1, "gpu overlay asks for a GPU")
    check("nvidia.com/gpu" not in json.dumps(one(rendered["overlays/cpu"], "Deployment")), "cpu overlay asks for none")
finally:
    server.terminate()
    server.wait(timeout=60)

sys.exit(check.finish())
