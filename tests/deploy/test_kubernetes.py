"""deploy/kubernetes: every rendered manifest validates against Kubernetes' own schemas, offline.

kustomize (built into kubectl) renders the base and the production overlay;
kubernetes-validate checks each object against the JSON schemas of the oldest
and the newest Kubernetes we support, strictly (an unknown field is an error).
No custom resource is shipped (the worker autoscaler uses an external metric),
so there is no CRD schema to fetch. Then what the schemas cannot see: security
context, probes, drain times, selectors, and every setting of .env.example.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from tests.config.test_env_example import documented_variables
from tests.ops.procs import BASE_DIR

KUBERNETES = BASE_DIR / "deploy" / "kubernetes"
# The oldest Kubernetes we support (autoscaling/v2, policy/v1, batch/v1 TTL all GA well before) and the newest schemas.
VERSIONS = ["1.29.0", "1.37.0"]
# Settings of .env.example with no place in a cluster, and why.
NOT_IN_KUBERNETES = {
    "POSTGRES_PASSWORD": "docker-compose.yml's bundled PostgreSQL only",
    "WEB_PORT": "docker-compose.yml only",
    "MAILPIT_PORT": "docker-compose.yml only",
    "TINKO_DEMO_PASSWORD": "seed_demo, local mode only",
    "TINKO_INPROCESS_WORKER_THREADS": "local mode only (no REDIS_URL)",
}


def kustomize(path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render deploy/kubernetes (kustomize is built in): install Debian's kubectl")
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def rendered(request) -> list[dict]:
    return kustomize(KUBERNETES / request.param)


@pytest.fixture(scope="module")
def production() -> list[dict]:
    return kustomize(KUBERNETES / "overlays" / "production")


def find(docs, kind, name=None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def pod_specs(docs):
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_validates_strictly_against_the_kubernetes_schemas(rendered, version):
    assert len(rendered) >= 12
    for doc in rendered:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_autoscaler_rules_for_prometheus_adapter_validate(version):
    for doc in yaml.safe_load_all((KUBERNETES / "monitoring" / "prometheus-adapter-rules.yaml").read_text()):
        kubernetes_validate.validate(doc, version, strict=True)
        assert yaml.safe_load(doc["data"]["config.yaml"])["externalRules"]


def test_the_validator_rejects_a_broken_manifest(production):
    web = find(production, "Deployment", "tinko-web")[0]
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)
    typo = yaml.safe_load(yaml.safe_dump(web))
    typo["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, VERSIONS[-1], strict=True)


def test_no_custom_resources_are_shipped(rendered):
    core = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
    assert {doc["apiVersion"] for doc in rendered} <= core


def test_web_worker_and_scheduler_deployments_with_probes_resources_and_a_migration_job(production):
    deployments = {d["metadata"]["name"]: d for d in find(production, "Deployment")}
    assert set(deployments) == {"tinko-web", "tinko-worker", "tinko-scheduler"}
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"], name
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init["command"][:3] == ["python", "manage.py", "wait_for_migrations"]
    (job,) = find(production, "Job", "tinko-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    images = {c["image"] for _, spec in pod_specs(production) for c in spec["containers"] + spec.get("initContainers", [])}
    assert images == {"registry.example.com/tinko:1.0.0"}


def test_every_pod_runs_as_the_images_non_root_user_with_a_read_only_root(rendered):
    for doc, spec in pod_specs(rendered):
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001, doc["metadata"]["name"]
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert "--uid 10001" in dockerfile and "USER 10001:10001" in dockerfile


def test_web_probes_send_a_host_that_tinko_allows(rendered):
    (config,) = find(rendered, "ConfigMap", "tinko-config")
    allowed = config["data"]["ALLOWED_HOSTS"].split(",")
    (web,) = find(rendered, "Deployment", "tinko-web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        (header,) = container[probe]["httpGet"]["httpHeaders"]
        assert header == {"name": "Host", "value": allowed[0]}
    (ingress,) = find(rendered, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == allowed[0]
    assert config["data"]["SITE_URL"] == f"https://{allowed[0]}"


def test_shutdown_is_timed_to_the_drain(production):
    config = find(production, "ConfigMap", "tinko-config")[0]["data"]
    web = find(production, "Deployment", "tinko-web")[0]["spec"]["template"]["spec"]
    pre_stop = int(web["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert web["terminationGracePeriodSeconds"] > pre_stop + int(config["GUNICORN_GRACEFUL_TIMEOUT"])
    worker = find(production, "Deployment", "tinko-worker")[0]["spec"]["template"]["spec"]
    command = worker["containers"][0]["command"]
    drain_ms = int(command[command.index("--worker-shutdown-timeout") + 1])
    assert worker["terminationGracePeriodSeconds"] >= drain_ms / 1000 + 5
    # A drained job's attempts are claimed again after their lease: the lease must outlast the drain.
    assert int(config["TINKO_ATTEMPT_LEASE"]) > drain_ms / 1000


def test_selectors_autoscalers_budgets_service_and_ingress_point_at_real_pods(production):
    deployments = {d["metadata"]["name"]: d for d in find(production, "Deployment")}

    def selected(selector):
        return [name for name, d in deployments.items()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]

    for name, deployment in deployments.items():
        assert selected(deployment["spec"]["selector"]["matchLabels"]) == [name]
    budgets = {d["metadata"]["name"]: selected(d["spec"]["selector"]["matchLabels"]) for d in find(production, "PodDisruptionBudget")}
    assert budgets == {name: [name] for name in deployments}
    (service,) = find(production, "Service")
    assert selected(service["spec"]["selector"]) == ["tinko-web"]
    (ingress,) = find(production, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    autoscalers = {d["metadata"]["name"]: d for d in find(production, "HorizontalPodAutoscaler")}
    assert {h["spec"]["scaleTargetRef"]["name"] for h in autoscalers.values()} == {"tinko-web", "tinko-worker"}
    web_metrics = autoscalers["tinko-web"]["spec"]["metrics"]
    assert [m["resource"]["name"] for m in web_metrics] == ["cpu"]
    external = [m["external"]["metric"]["name"] for m in autoscalers["tinko-worker"]["spec"]["metrics"] if m["type"] == "External"]
    adapter = yaml.safe_load((KUBERNETES / "monitoring" / "prometheus-adapter-rules.yaml").read_text())
    served = {rule["name"]["as"] for rule in yaml.safe_load(adapter["data"]["config.yaml"])["externalRules"]}
    assert external == ["tinko_worker_jobs_waiting"] and set(external) <= served


def test_every_setting_of_env_example_is_configured_or_referenced_from_the_secret(production):
    (config,) = find(production, "ConfigMap", "tinko-config")
    configured = set(config["data"])
    for _, spec in pod_specs(production):
        for container in spec["containers"]:
            assert {"configMapRef": {"name": "tinko-config"}} in container["envFrom"]
            configured |= {entry["name"] for entry in container.get("env", [])}
    documented = set(documented_variables())
    missing = sorted(
        name for name in documented - set(NOT_IN_KUBERNETES)
        if name not in configured and f"{name}_FILE" not in configured
    )
    assert not missing, f"add to deploy/kubernetes/base/configmap.yaml, or reference from the Secret: {missing}"
    assert set(NOT_IN_KUBERNETES) <= documented


def test_secret_files_are_mounted_where_the_config_says(production):
    config = find(production, "ConfigMap", "tinko-config")[0]["data"]
    for _, spec in pod_specs(production):
        (volume,) = [v for v in spec["volumes"] if "secret" in v]
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
        for key, path in config.items():
            if key.endswith("_FILE"):
                name = key.removesuffix("_FILE")
                assert path == f"{mount['mountPath']}/{name}"
                assert {"key": name, "path": name} in volume["secret"]["items"]


def test_metrics_listeners_are_reachable_from_monitoring_only(production):
    (policy,) = find(production, "NetworkPolicy")
    components = policy["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert sorted(components) == ["scheduler", "worker"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    ports = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["ports"] for d in find(production, "Deployment")}
    config = find(production, "ConfigMap", "tinko-config")[0]["data"]
    assert ports["tinko-worker"] == [{"name": "metrics", "containerPort": int(config["TINKO_WORKER_METRICS_PORT"])}]
    assert ports["tinko-scheduler"] == [{"name": "metrics", "containerPort": int(config["TINKO_SCHEDULER_METRICS_PORT"])}]


def test_manifests_name_no_registry_but_the_example_one():
    for path in KUBERNETES.rglob("*.yaml"):
        for image in re.findall(r"newName:\s*(\S+)", path.read_text()):
            assert image.startswith(("tinko", "registry.example.com/")), (path, image)
