"""The Kubernetes manifests in deploy/kubernetes agree with the code they deploy.

Parses every manifest (PyYAML) and checks them against the sources of truth: the Dockerfile
(EXPOSE, ENTRYPOINT, user id), `nasfer serve`'s own argument parser and ServeConfig (the flags the
Deployment passes, after Kubernetes' $(VAR) substitution from the ConfigMap, must parse and validate),
the Flask app's routes (the probe paths must answer 200 on a ready app), pyproject's version (the
image tag) and the cross-references between objects (selectors, named ports, claim names).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

import yaml  # noqa: E402

from nasfer import config, weights  # noqa: E402
from nasfer.cli import build_parser  # noqa: E402
from nasfer.service.app import create_app  # noqa: E402
from nasfer.service.config import ServeConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
OVERLAY = K8S / "model-volume"
MB_PER_WORKER, MB_MASTER = 150, 25  # docs/deploy.md, section 1 (measured RSS)
# docs/deploy.md, section 1: peak memory of one request in flight with an image of up to 25 MP (noise
# JPEG, the worst case), and the highest per-worker peak measured with 2 workers x 2 threads.
MB_PER_REQUEST, MB_WORKER_PEAK, MEASURED_MAX_PIXELS = 600, 1710, 25_000_000


def kustomization_dirs() -> list[Path]:
    return sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects(folder: Path) -> dict[str, dict]:
    """`Kind/name` -> object for every resource listed by the kustomization in `folder` (recursively)."""
    kust = load(folder / "kustomization.yaml")[0]
    found: dict[str, dict] = {}
    for entry in kust["resources"]:
        target = (folder / entry).resolve()
        if target.is_dir():
            found.update(objects(target))
        else:
            for doc in load(target):
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def merge(base: dict, patch: dict) -> dict:
    """A strategic-merge patch as kustomize applies it here: maps merge, named lists merge by name."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and all(
                isinstance(v, dict) and "name" in v for v in value + out[key]):
            merged = {item["name"]: item for item in out[key]}
            for item in value:
                merged[item["name"]] = merge(merged.get(item["name"], {}), item)
            out[key] = list(merged.values())
        else:
            out[key] = value
    return out


def overlay_objects() -> dict[str, dict]:
    found = objects(OVERLAY)
    for entry in load(OVERLAY / "kustomization.yaml")[0]["patches"]:
        patch = load(OVERLAY / entry["path"])[0]
        key = f"{patch['kind']}/{patch['metadata']['name']}"
        assert key in found, f"{entry['path']} patches {key}, which the overlay does not contain"
        found[key] = merge(found[key], patch)
    return found


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile(), re.M)
    assert match, "the Dockerfile has no exec-form ENTRYPOINT"
    return json.loads(match.group(1))


def container(objs: dict[str, dict]) -> dict:
    (c,) = objs["Deployment/nasfer"]["spec"]["template"]["spec"]["containers"]
    return c


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) substitution in container args (unknown names are left as they are)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def serve_config(objs: dict[str, dict]) -> ServeConfig:
    """What `nasfer serve` runs with in the pod: ENTRYPOINT + the Deployment's args, env from the ConfigMap."""
    c = container(objs)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(objs[f"ConfigMap/{source['configMapRef']['name']}"]["data"])
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    argv = entrypoint()[1:] + [expand(a, env) for a in c.get("args", [])]
    assert not any("$(" in a for a in argv), f"unresolved variable in the args: {argv}"
    args = build_parser().parse_args(argv)
    assert args.command == "serve"
    return config.from_args(ServeConfig, args).validate()


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if str(quantity).endswith("m") else float(quantity)


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for suffix, factor in units.items():
        if str(quantity).endswith(suffix):
            return float(str(quantity)[: -len(suffix)]) * factor
    return float(quantity) / 2**20


@pytest.fixture(scope="module")
def base() -> dict[str, dict]:
    return objects(BASE)


# ------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------
def test_no_kustomization_lies_inside_a_kustomization_it_uses():
    """kustomize refuses a resource folder that contains the kustomization using it ("cycle detected:
    candidate root ... contains visited root ..."), e.g. an overlay inside its base's folder."""
    dirs = kustomization_dirs()
    assert {BASE, OVERLAY} <= set(dirs)
    for folder in dirs:
        for entry in load(folder / "kustomization.yaml")[0].get("resources", []):
            target = (folder / entry).resolve()
            assert target.exists(), f"{folder}: resource {entry} does not exist"
            if target.is_dir():
                assert (target / "kustomization.yaml").is_file(), f"{folder}: {entry} is not a kustomization"
                assert not folder.resolve().is_relative_to(target), (
                    f"{folder} lies inside {target}, which it lists as a resource: kustomize fails with "
                    "'cycle detected'; put the overlay beside its base, not inside it")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("folder", kustomization_dirs(), ids=lambda p: p.name)
def test_kubectl_kustomize_builds(folder):
    result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert "Deployment" in kinds


def test_every_manifest_parses_and_is_listed_once():
    listed = {(BASE / r).resolve() for r in load(BASE / "kustomization.yaml")[0]["resources"]}
    listed |= {(OVERLAY / r).resolve() for r in load(OVERLAY / "kustomization.yaml")[0]["resources"]}
    listed |= {(OVERLAY / p["path"]).resolve() for p in load(OVERLAY / "kustomization.yaml")[0]["patches"]}
    standalone = {OVERLAY / "model-loader.yaml"}  # applied by hand, documented in the file
    for path in sorted(K8S.rglob("*.yaml")):
        docs = load(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion and kind are required"
        if path.name != "kustomization.yaml":
            assert path in listed or path in standalone, f"{path} is not referenced by a kustomization"


def test_the_base_has_the_objects_a_service_needs(base):
    assert {"Deployment/nasfer", "Service/nasfer", "HorizontalPodAutoscaler/nasfer",
            "ConfigMap/nasfer-config", "PodDisruptionBudget/nasfer"} <= set(base)
    assert base["HorizontalPodAutoscaler/nasfer"]["apiVersion"] == "autoscaling/v2"
    assert base["Deployment/nasfer"]["apiVersion"] == "apps/v1"


def test_container_port_matches_the_dockerfile_and_the_server_config(base):
    exposed = {int(p) for p in re.findall(r"^EXPOSE\s+(\d+)", dockerfile(), re.M)}
    cfg = serve_config(base)
    (port,) = container(base)["ports"]
    assert port["containerPort"] in exposed
    assert port["containerPort"] == cfg.port
    assert cfg.host == "0.0.0.0", "inside a pod the server must listen on all interfaces"
    svc = base["Service/nasfer"]["spec"]["ports"][0]
    assert svc["targetPort"] in (port["name"], port["containerPort"])


def test_probe_paths_are_routes_that_answer_on_a_ready_app(base):
    c = container(base)
    probes = {kind: c[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    for get in probes.values():
        assert get["port"] in port_names or get["port"] in port_names.values()

    class Ready:  # a loaded recognizer, without loading a model
        labels = ["happy"]
        card = {"name": "probe-test"}

        def detect(self, *args, **kwargs):
            return []

    app = create_app(ServeConfig(), recognizer=Ready())
    routes = {rule.rule for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    client = app.test_client()
    for get in probes.values():
        assert get["path"] in routes
        assert client.get(get["path"]).status_code == 200, get["path"]


def test_image_name_and_tag_match_the_build(base):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (image,) = load(BASE / "kustomization.yaml")[0]["images"]
    assert image["name"] == container(base)["image"]
    assert image["newTag"] == version
    # the documented build command tags the image with that name
    assert f"docker build -t {image['newName']} ." in dockerfile()
    (loader,) = load(OVERLAY / "model-loader.yaml")[0]["spec"]["containers"]
    assert loader["image"] == f"{image['newName']}:{version}"


def test_pod_runs_as_the_image_user(base):
    uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile()).group(1))
    pod = base["Deployment/nasfer"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_workers_fit_the_cpu_and_memory_given(base):
    cfg = serve_config(base)
    res = container(base)["resources"]
    assert cfg.workers == cpu_cores(res["limits"]["cpu"]) == cpu_cores(res["requests"]["cpu"])
    assert mebibytes(res["requests"]["memory"]) >= cfg.workers * MB_PER_WORKER + MB_MASTER
    assert mebibytes(res["limits"]["memory"]) >= mebibytes(res["requests"]["memory"])
    # every thread of every worker may hold the largest accepted image at once
    assert cfg.max_pixels <= MEASURED_MAX_PIXELS, "the memory figures were measured up to 25 MP: measure again"
    busy = cfg.workers * (MB_PER_WORKER + cfg.threads * MB_PER_REQUEST) + MB_MASTER
    assert mebibytes(res["limits"]["memory"]) * 2**20 / 1e6 >= max(busy, cfg.workers * MB_WORKER_PEAK + MB_MASTER)
    assert cfg.model is not None and weights.resolve_model(cfg.model).is_file()
    grace = base["Deployment/nasfer"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > min(cfg.timeout, 30), "gunicorn needs its graceful timeout before the SIGKILL"


def test_selectors_and_references_agree(base):
    deploy = base["Deployment/nasfer"]
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    for selector in (deploy["spec"]["selector"]["matchLabels"], base["Service/nasfer"]["spec"]["selector"],
                     base["PodDisruptionBudget/nasfer"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    target = base["HorizontalPodAutoscaler/nasfer"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deploy["metadata"]["name"])
    hpa = base["HorizontalPodAutoscaler/nasfer"]["spec"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    # the HPA's CPU utilisation is relative to the request, so there must be one
    assert container(base)["resources"]["requests"]["cpu"]


def test_model_volume_overlay_serves_the_model_from_the_mounted_claim():
    objs = overlay_objects()
    cfg = serve_config(objs)
    c = container(objs)
    pod = objs["Deployment/nasfer"]["spec"]["template"]["spec"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "models"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert mount["readOnly"] is True
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in objs
    assert Path(cfg.model).is_relative_to(mount["mountPath"]) and cfg.model.endswith(".onnx")
    # the base's own volumes survive the patch
    assert {"tmp", "models"} <= {v["name"] for v in pod["volumes"]}
