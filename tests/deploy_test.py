#!/usr/bin/env python3
"""Offline validation of deploy/: every kustomize overlay renders; every rendered object
validates against the Kubernetes schemas of a pinned version, InferencePool and HTTPRoute
against their CRDs' schemas (tests/fixtures/k8s-crds), the other CRD kinds by cross-reference;
yamllint; promtool check and unit tests of the alerts; every metric the dashboard, alerts,
adapter rule, KEDA trigger and endpoint picker use is one a running server exports; probes,
ports and flags agree with the server's own defaults and its health service; the inference
gateway's pool, picker, route and NetworkPolicy agree with the server's ports.

usage: deploy_test.py REPO_DIR BIN_DIR
"""
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

import test_support

REPO, BIN_DIR = sys.argv[1], sys.argv[2]
DEPLOY = os.path.join(REPO, "deploy")
K8S_VERSION = "1.33.0"
RENDERED = ["overlays/cpu", "overlays/gpu", "examples/gpu-keda-tls", "examples/gpu-inference-gateway",
            "examples/cpu-kv-tiers", "examples/gpu-kv-tiers", "examples/cpu-kv-tiers-tls"]
CRD_KINDS = {"PrometheusRule", "ServiceMonitor", "ScaledObject"}
CRD_FIXTURES = os.path.join(REPO, "tests", "fixtures", "k8s-crds")

check = test_support.Checks()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def refusing_unknown_fields(schema):
    """A CRD's structural schema as JSON Schema that refuses fields it does not declare, as
    kubernetes-validate --strict does (the API server would drop them without a word)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: refusing_unknown_fields(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = refusing_unknown_fields(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [refusing_unknown_fields(s) for s in out[key]]
    return out


# (apiVersion, kind) -> a validator of every served version of each CRD kept as a fixture. CEL
# rules (x-kubernetes-validations) are the API server's alone and are not checked here.
crd_validators = {}
for name in sorted(os.listdir(CRD_FIXTURES)):
    if name.endswith(".yaml"):
        crd = yaml.safe_load(open(os.path.join(CRD_FIXTURES, name)))
        for version in crd["spec"]["versions"]:
            if version["served"]:
                schema = refusing_unknown_fields(version["schema"]["openAPIV3Schema"])
                crd_validators[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = \
                    jsonschema.Draft4Validator(schema)
check({k for _, k in crd_validators} == {"InferencePool", "HTTPRoute"}, f"CRD fixtures: {sorted(crd_validators)}")


def crd_errors(o):
    validator = crd_validators.get((o["apiVersion"], o["kind"]))
    if validator is None:
        return [f"no CRD in {CRD_FIXTURES} serves {o['apiVersion']} {o['kind']}"]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(o)]


# The images build what the README builds: every library package of its build line (the Run
# section's apt-get) is installed in each Dockerfile's build stage.
readme_apt = next(line for line in open(os.path.join(REPO, "README.md")) if line.startswith("apt-get update"))
build_packages = {p for p in readme_apt.split() if p.endswith("-dev")}
for dockerfile in ("Dockerfile", "Dockerfile.cpu"):
    text = open(os.path.join(DEPLOY, "docker", dockerfile)).read()
    installed = set(re.findall(r"[\w.+-]+-dev\b", text.split("apt-get install", 1)[1].split("&&", 1)[0]))
    check(build_packages <= installed, f"{dockerfile} lacks the README's build packages {sorted(build_packages - installed)}")

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
            if o["kind"] in {k for _, k in crd_validators}:
                errors = crd_errors(o)
                check(not errors, f"{overlay}: {o['kind']} {o['metadata']['name']} against its CRD: {errors}")
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

# The CRD schemas have teeth: they refuse a misspelled field and a port out of range.
pool = next(o for objects in rendered.values() for o in objects if o["kind"] == "InferencePool")
misspelled, out_of_range = copy.deepcopy(pool), copy.deepcopy(pool)
misspelled["spec"]["targetPort"] = misspelled["spec"].pop("targetPorts")
out_of_range["spec"]["targetPorts"] = [{"number": 0}]
check(crd_errors(misspelled) and crd_errors(out_of_range), "the InferencePool schema refuses bad pools")


def one(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found[0] if len(found) == 1 else None


def admits(policy, port, pod_labels=None):
    """Whether an ingress rule of `policy` lets a peer reach `port` (a container port's name): any
    peer (a rule without `from`), or, given pod_labels, a pod with them in the policy's namespace."""
    for rule in policy["spec"].get("ingress", []):
        if rule.get("ports") and port not in {p["port"] for p in rule["ports"]}:
            continue
        peers = rule.get("from")
        if not peers:
            return True
        if pod_labels is not None and any(
                set(p) == {"podSelector"} and not p["podSelector"].get("matchExpressions")
                and p["podSelector"].get("matchLabels", {}).items() <= pod_labels.items() for p in peers):
            return True
    return False


def picker(objects):
    """The endpoint picker of an overlay's InferencePool: (Deployment, its container, its
    EndpointPickerConfig as text), or None without a pool."""
    pool = one(objects, "InferencePool")
    if pool is None:
        return None
    svc = one(objects, "Service", pool["spec"]["endpointPickerRef"]["name"])
    deployments = [o for o in objects if o["kind"] == "Deployment"
                   and svc["spec"]["selector"].items() <= o["spec"]["template"]["metadata"]["labels"].items()]
    check(len(deployments) == 1, f"one Deployment behind the picker's Service: {len(deployments)}")
    dep = deployments[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    config_file = next(a.split("=", 1)[1] for a in c["args"] if a.startswith("--config-file="))
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == os.path.dirname(config_file))
    volume = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    return dep, c, one(objects, "ConfigMap", volume["configMap"]["name"])["data"][os.path.basename(config_file)]


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
# With a disk tier, so that the KV tier series the dashboard and the alerts use are exported.
kv_disk = tempfile.TemporaryDirectory()
server, grpc_port, metrics_port = test_support.start_server(
    BIN_DIR, "--kv-capacity", "4096", "--kv-disk-dir", os.path.join(kv_disk.name, "kv"), "--kv-disk-gib", "1")
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
        if found := picker(objects):
            users[f"{overlay}/endpoint picker"] = found[2]
    for user, text in users.items():
        used = names_in(text)
        check(used, f"{user} uses bptserve metrics")
        check(used <= exported, f"{user} uses metrics the server does not export: {sorted(used - exported)}")

    # The KV layout the endpoint picker reads: block_size tokens a block, num_gpu_blocks blocks in
    # the --kv-capacity 4096 pool (cache_dtype, what a block holds, is there for people).
    layout = re.findall(r'^bptserve_cache_config_info\{block_size="(\d+)",cache_dtype="(?:fp32|bf16)",'
                        r'num_gpu_blocks="(\d+)"\} 1$', scrape, re.M)
    check(len(layout) == 1 and int(layout[0][0]) * int(layout[0][1]) == 4096, f"bptserve_cache_config_info: {layout}")

    # The dashboard: a datasource variable, no hard-coded UIDs.
    dash = json.load(open(os.path.join(DEPLOY, "grafana", "bptserve.json")))
    uids = set(re.findall(r'"uid": "([^"]*)"', json.dumps(dash)))
    check(uids == {"${datasource}"}, f"dashboard datasource UIDs: {uids}")
    check(any(v["type"] == "datasource" for v in dash["templating"]["list"]), "dashboard has a datasource variable")

    # Probes, ports and flags against the server.
    options_h = open(os.path.join(REPO, "server", "server_options.h")).read()
    default_port = re.search(r"int port = (\d+);", options_h).group(1)
    default_metrics_port = re.search(r"int metrics_port = (\d+);", options_h).group(1)
    default_http_port = re.search(r"int http_port = (\d+);", options_h)
    check(default_http_port is not None, "server_options.h has the HTTP API's default port (int http_port = N;)")
    default_http_port = default_http_port.group(1) if default_http_port else None
    help_text = run([os.path.join(BIN_DIR, "bptserve"), "--help"]).stdout
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
    for overlay, objects in rendered.items():
        cm = one(objects, "ConfigMap", "bptserve-flags")["data"]
        dep = one(objects, "Deployment", "bptserve")
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        check(cm["BPTSERVE_PORT"] == default_port == str(ports["grpc"]), f"{overlay}: gRPC port {cm['BPTSERVE_PORT']}")
        check(cm["BPTSERVE_METRICS_PORT"] == default_metrics_port == str(ports["metrics"]),
              f"{overlay}: metrics port {cm['BPTSERVE_METRICS_PORT']}")
        check(cm["BPTSERVE_HTTP_PORT"] == default_http_port == str(ports["http"]),
              f"{overlay}: HTTP port {cm['BPTSERVE_HTTP_PORT']}")
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
        svc = one(objects, "Service", "bptserve")
        svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
        check(svc_ports["grpc"].get("appProtocol") == "grpc", f"{overlay}: Service gRPC port has appProtocol grpc")
        check(svc_ports["http"]["targetPort"] == "http" and svc_ports["http"].get("appProtocol") == "http",
              f"{overlay}: Service HTTP port")
        np = one(objects, "NetworkPolicy", "bptserve")
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        check(np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items(),
              f"{overlay}: NetworkPolicy selects the pods")
        # An inference gateway's proxy runs where its implementation puts it (Envoy Gateway in its
        # own namespace): the HTTP API is open to any peer, as gRPC is, behind the API keys.
        check(admits(np, "http") and admits(np, "grpc"), f"{overlay}: NetworkPolicy admits the gateway to the HTTP port")
        sm = one(objects, "ServiceMonitor")
        check(sm is not None and sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]},
              f"{overlay}: ServiceMonitor scrapes a Service port")
        so = one(objects, "ScaledObject")
        hpa = one(objects, "HorizontalPodAutoscaler")
        check((so is None) != (hpa is None), f"{overlay}: exactly one autoscaler (HPA or KEDA)")
        target = (so or hpa)["spec"]["scaleTargetRef"]["name"]
        check(target == dep["metadata"]["name"], f"{overlay}: the autoscaler scales the Deployment")

    # The inference gateway: the pool is the server's pods on their HTTP port, the route leads to
    # it, and its endpoint picker scrapes their metrics port (not the HTTP port), which the
    # NetworkPolicy admits it to, with bptserve's metric names.
    gateways = [overlay for overlay, objects in rendered.items() if one(objects, "InferencePool")]
    check("examples/gpu-inference-gateway" in gateways, f"overlays with an InferencePool: {gateways}")
    for overlay in gateways:
        objects = rendered[overlay]
        pool = one(objects, "InferencePool")
        cm = one(objects, "ConfigMap", "bptserve-flags")["data"]
        dep = one(objects, "Deployment", "bptserve")
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        ports = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
        selector = pool["spec"]["selector"]["matchLabels"]
        check(selector.items() <= pod_labels.items(), f"{overlay}: the pool selects the server's pods")
        check([p["number"] for p in pool["spec"]["targetPorts"]] == [ports["http"]],
              f"{overlay}: the pool targets the HTTP port")
        check(pool["spec"].get("appProtocol", "http") == "http", f"{overlay}: the pool speaks HTTP/1.1 to the pods")
        route = one(objects, "HTTPRoute")
        backends = [b for rule in route["spec"]["rules"] for b in rule["backendRefs"]]
        to_pool = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": pool["metadata"]["name"]}
        check(backends == [to_pool], f"{overlay}: the HTTPRoute leads to the pool: {backends}")

        epp, c, config_text = picker(objects)
        epp_labels = epp["spec"]["template"]["metadata"]["labels"]
        check(not selector.items() <= epp_labels.items(), f"{overlay}: the pool leaves the picker out")
        ref = pool["spec"]["endpointPickerRef"]
        epp_svc = one(objects, "Service", ref["name"])
        epp_ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        target = [p["targetPort"] for p in epp_svc["spec"]["ports"] if p["port"] == ref["port"]["number"]]
        check(target and epp_ports.get(target[0]) == 9002,  # the picker's --grpc-port (default)
              f"{overlay}: endpointPickerRef reaches the picker's ext-proc port")
        args = dict(a[2:].split("=", 1) for a in c["args"])
        check(args["pool-name"] == pool["metadata"]["name"] and args.get("pool-group") == "inference.networking.k8s.io",
              f"{overlay}: the picker serves the pool")
        env = {e["name"]: e for e in c["env"]}
        scraped = re.sub(r"\$\((\w+)\)", lambda m: cm[env[m.group(1)]["valueFrom"]["configMapKeyRef"]["key"]],
                         args["model-server-metrics-port"])
        check(scraped == str(ports["metrics"]) != str(ports["http"]),
              f"{overlay}: the picker scrapes the metrics port {ports['metrics']}, not the HTTP port (got {scraped})")
        check(admits(one(objects, "NetworkPolicy", "bptserve"), "metrics", epp_labels),
              f"{overlay}: NetworkPolicy admits the picker to the metrics port")
        check(re.fullmatch(r"registry\.k8s\.io/gateway-api-inference-extension/epp:v\d+\.\d+\.\d+", c["image"]) is not None,
              f"{overlay}: picker image pinned to a release: {c['image']}")
        sc = c["securityContext"]
        check(sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
              and epp["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], f"{overlay}: hardened picker")
        account = epp["spec"]["template"]["spec"]["serviceAccountName"]
        binding = one(objects, "RoleBinding", account)
        role = one(objects, "Role", binding["roleRef"]["name"])
        check({"kind": "ServiceAccount", "name": account} in binding["subjects"] and one(objects, "ServiceAccount", account),
              f"{overlay}: the picker's Role is bound to its ServiceAccount")
        granted = {(g, r) for rule in role["rules"] if {"get", "watch", "list"} <= set(rule["verbs"])
                   for g in rule["apiGroups"] for r in rule["resources"]}
        check(granted >= {("", "pods"), ("inference.networking.k8s.io", "inferencepools")},
              f"{overlay}: the picker reads pods and pools")

        config = yaml.safe_load(config_text)
        plugins = {p.get("name", p["type"]): p for p in config["plugins"]}
        extractor = plugins["core-metrics-extractor"]["parameters"]
        engine = next(e for e in extractor["engineConfigs"] if e["name"] == extractor["defaultEngine"])
        check({k: v for k, v in engine.items() if k != "name"} == {
            "queuedRequestsSpec": "bptserve_num_requests_waiting", "runningRequestsSpec": "bptserve_num_requests_running",
            "kvUsageSpec": "bptserve_kv_cache_usage_perc", "loraSpec": "", "cacheInfoSpec": "bptserve_cache_config_info"},
            f"{overlay}: the picker reads bptserve's metrics: {engine}")
        check(config["dataLayer"]["sources"] == [{"pluginRef": "metrics-data-source",
                                                  "extractors": [{"pluginRef": "core-metrics-extractor"}]}]
              and plugins["metrics-data-source"]["parameters"]["path"] == "/metrics",
              f"{overlay}: the picker scrapes /metrics")
        scorers = {p["pluginRef"] for prof in config["schedulingProfiles"] for p in prof["plugins"]}
        check(scorers == {"queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer"}
              and plugins["prefix-cache-scorer"]["parameters"]["autoTune"], f"{overlay}: the picker's scorers: {scorers}")

    # The KV tiers: the disk tier's directory is a mounted, writable volume larger than its budget;
    # Redis comes with its HMAC key (the server refuses it without) and its password as files of a
    # mounted Secret; none on the GPU overlays (the CUDA backend refuses tiers for now).
    def arg_value(c, cm, flag):
        value = next((a.split("=", 1)[1] for a in c["args"] if a.startswith(flag + "=")), None)
        return None if value is None else re.sub(r"\$\((\w+)\)", lambda m: cm[m.group(1)], value)

    def gib(quantity):
        units = {"Gi": 1, "Ti": 1024, "Mi": 1 / 1024}
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(Gi|Ti|Mi)", quantity)
        return float(m.group(1)) * units[m.group(2)] if m else None

    tiered = []
    for overlay, objects in rendered.items():
        cm = one(objects, "ConfigMap", "bptserve-flags")["data"]
        pod = one(objects, "Deployment", "bptserve")["spec"]["template"]["spec"]
        c = pod["containers"][0]
        volumes = {v["name"]: v for v in pod["volumes"]}

        def volume_at(path):
            mounts = [m for m in c["volumeMounts"] if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")]
            return (mounts[0], volumes[mounts[0]["name"]]) if len(mounts) == 1 else (None, None)
        disk_dir, remote = arg_value(c, cm, "--kv-disk-dir"), arg_value(c, cm, "--kv-remote")
        host_gib = float(arg_value(c, cm, "--kv-host-gib") or 0)
        if disk_dir or remote or host_gib:
            tiered.append(overlay)
        if host_gib:
            check(cm["BPTSERVE_DEVICE"] == "cuda", f"{overlay}: the host tier is for a GPU's pool (skipped on the CPU)")
            request = gib(str(c["resources"]["requests"].get("memory", "")))
            limit = gib(str(c["resources"]["limits"].get("memory", "")))
            # Page-locked memory is the container's: the GPU overlay's own 32Gi request must remain.
            check(request is not None and limit is not None and request >= host_gib + 32 and limit >= request,
                  f"{overlay}: memory request {request} GiB holds the host tier's {host_gib} GiB and the server's 32")
        if disk_dir:
            mount, volume = volume_at(disk_dir)
            check(mount is not None and not mount.get("readOnly") and "emptyDir" in volume,
                  f"{overlay}: --kv-disk-dir {disk_dir} is on a writable volume of its own")
            budget = float(arg_value(c, cm, "--kv-disk-gib") or 0)
            limit = gib(volume["emptyDir"].get("sizeLimit", "")) if volume else None
            check(budget > 0 and limit is not None and limit > budget,
                  f"{overlay}: the disk tier's volume ({limit} GiB) holds its budget ({budget} GiB) and some headroom")
            requested = gib(str(c["resources"]["requests"].get("ephemeral-storage", "")))
            check(requested is not None and requested >= limit, f"{overlay}: the pod requests the disk tier's storage")
        if remote:
            check(re.fullmatch(r"rediss?://[a-z0-9.-]+(:\d+)?(/\d+)?", remote) is not None,
                  f"{overlay}: --kv-remote is a Service's redis:// or rediss:// address without a password: {remote}")
            tls_flags = [f for f in ("--kv-remote-tls-ca-file",) if arg_value(c, cm, f)]
            check(remote.startswith("rediss://") == bool(tls_flags),
                  f"{overlay}: rediss:// with --kv-remote-tls-ca-file, or neither: {remote} {tls_flags}")
            for flag in ("--kv-tier-key-file", "--kv-remote-password-file", *tls_flags):
                path = arg_value(c, cm, flag)
                mount, volume = volume_at(path) if path else (None, None)
                check(mount is not None and mount.get("readOnly") and "secret" in volume,
                      f"{overlay}: {flag} {path} is a file of a mounted Secret")
    check({"examples/cpu-kv-tiers", "examples/gpu-kv-tiers", "examples/cpu-kv-tiers-tls"} <= set(tiered),
          f"overlays with KV tiers: {tiered}")

    gpu = one(rendered["overlays/gpu"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    check(gpu["resources"]["limits"].get("nvidia.com/gpu") == 1, "gpu overlay asks for a GPU")
    check("nvidia.com/gpu" not in json.dumps(one(rendered["overlays/cpu"], "Deployment")), "cpu overlay asks for none")
finally:
    server.terminate()
    server.wait(timeout=60)
    kv_disk.cleanup()

sys.exit(check.finish())
