"""A small kustomize renderer for the subset deploy/k8s uses (kustomize and
kubectl are not in Debian bookworm): `resources` (files, multi-document, and
directories holding a kustomization), `namespace`, `labels` (pairs,
includeTemplates; includeSelectors must be false), `images` (newName,
newTag, digest) and `patches` (strategic merge from a file with one
document, or JSON 6902 operations inline with a target). Any other field or
option is an error, so a manifest that starts using more of kustomize fails
the test instead of being rendered wrong.

Order as kustomize applies them within one kustomization: resources (each
base fully rendered first), patches, namespace, labels, images.
"""
import copy
import os

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
TEMPLATED = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition"}
# strategic-merge keys of the lists deploy/k8s patches (from the Kubernetes API's patchMergeKey)
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "env": "name",
              "volumeMounts": "mountPath", "imagePullSecrets": "name", "envFrom": None}


class KustomizeError(Exception):
    pass


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def key(res):
    return (res.get("kind"), res.get("metadata", {}).get("name"))


def smp(base, patch, field=None):
    """Strategic merge of patch into base (both plain YAML values)."""
    if isinstance(patch, dict) and isinstance(base, dict):
        if any(k.startswith("$") for k in patch):
            raise KustomizeError("strategic-merge directives (%s) are not supported" % list(patch))
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = smp(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(patch, list) and isinstance(base, list) and MERGE_KEYS.get(field):
        mk = MERGE_KEYS[field]
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            idx = next((i for i, x in enumerate(out) if x.get(mk) == item.get(mk)), None)
            if idx is None:
                out.append(copy.deepcopy(item))
            else:
                out[idx] = smp(out[idx], item, None)
        return out
    return copy.deepcopy(patch)  # scalars and lists without a merge key are replaced


def pointer(path):
    if not path.startswith("/"):
        raise KustomizeError("JSON pointer %r must start with /" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json6902(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            i = len(parent) if last == "-" else int(last)
            if kind in ("replace", "remove", "test") and not 0 <= i < len(parent):
                raise KustomizeError("%s %s: no such element" % (kind, op["path"]))
            if kind == "add":
                parent.insert(i, copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[i] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[i]
            elif kind == "test" and parent[i] != op["value"]:
                raise KustomizeError("test %s failed" % op["path"])
        else:
            if kind in ("replace", "remove", "test") and last not in parent:
                raise KustomizeError("%s %s: no such member" % (kind, op["path"]))
            if kind in ("add", "replace"):
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[last]
            elif kind == "test" and parent[last] != op["value"]:
                raise KustomizeError("test %s failed" % op["path"])
        if kind not in ("add", "replace", "remove", "test"):
            raise KustomizeError("JSON patch op %r is not supported" % kind)
    return doc


def matches(res, target):
    for field, value in target.items():
        if field == "kind" and res.get("kind") != value:
            return False
        if field == "name" and res.get("metadata", {}).get("name") != value:
            return False
        if field == "version" and res.get("apiVersion", "").split("/")[-1] != value:
            return False
        if field == "group":
            api = res.get("apiVersion", "")
            if (api.split("/")[0] if "/" in api else "") != value:
                return False
        if field not in ("kind", "name", "version", "group"):
            raise KustomizeError("patch target field %r is not supported" % field)
    return True


def pod_specs(res):
    """The pod specs inside a workload resource (for images)."""
    spec = res.get("spec", {})
    if res.get("kind") == "Pod":
        return [spec]
    if res.get("kind") == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    if "template" in spec:
        return [spec["template"].get("spec", {})]
    return []


def split_image(image):
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, None, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:], None
    return image, None, None


def render(directory):
    """Renders the kustomization in directory; returns the list of resources."""
    kpath = os.path.join(directory, "kustomization.yaml")
    kdocs = load_docs(kpath)
    if len(kdocs) != 1 or kdocs[0].get("kind") != "Kustomization":
        raise KustomizeError("%s: expected one Kustomization" % kpath)
    k = kdocs[0]
    unknown = set(k) - SUPPORTED
    if unknown:
        raise KustomizeError("%s: fields not supported by this renderer: %s" % (kpath, sorted(unknown)))

    resources = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(directory, r))
        docs = render(p) if os.path.isdir(p) else load_docs(p)
        for d in docs:
            if any(key(d) == key(x) for x in resources):
                raise KustomizeError("%s: %s/%s defined twice" % (p, *key(d)))
            resources.append(d)

    for patch in k.get("patches", []):
        if set(patch) - {"path", "patch", "target"}:
            raise KustomizeError("%s: patch fields %s not supported" % (kpath, sorted(set(patch))))
        if "path" in patch:
            docs = load_docs(os.path.join(directory, patch["path"]))
            if len(docs) != 1:
                raise KustomizeError("%s: a patch file holds exactly one document" % patch["path"])
            body = docs[0]
        else:
            body = yaml.safe_load(patch["patch"])
        target = patch.get("target")
        if isinstance(body, list):
            if target is None:
                raise KustomizeError("%s: a JSON 6902 patch needs a target" % kpath)
            hit = [i for i, res in enumerate(resources) if matches(res, target)]
            for i in hit:
                resources[i] = json6902(resources[i], body)
        else:
            if target is None:
                target = {"kind": body.get("kind"), "name": body.get("metadata", {}).get("name")}
            hit = [i for i, res in enumerate(resources) if matches(res, target)]
            for i in hit:
                resources[i] = smp(resources[i], body)
        if not hit:
            raise KustomizeError("%s: patch %s matches no resource" % (kpath, target))

    ns = k.get("namespace")
    if ns:
        for res in resources:
            if res.get("kind") not in CLUSTER_SCOPED:
                res.setdefault("metadata", {})["namespace"] = ns

    for lab in k.get("labels", []):
        if lab.get("includeSelectors"):
            raise KustomizeError("%s: labels with includeSelectors are not supported" % kpath)
        if set(lab) - {"pairs", "includeSelectors", "includeTemplates"}:
            raise KustomizeError("%s: labels fields %s not supported" % (kpath, sorted(lab)))
        for res in resources:
            res.setdefault("metadata", {}).setdefault("labels", {}).update(lab["pairs"])
            if lab.get("includeTemplates") and res.get("kind") in TEMPLATED:
                tmpl = res.setdefault("spec", {}).setdefault("template", {})
                tmpl.setdefault("metadata", {}).setdefault("labels", {}).update(lab["pairs"])

    for img in k.get("images", []):
        if set(img) - {"name", "newName", "newTag", "digest"}:
            raise KustomizeError("%s: images fields %s not supported" % (kpath, sorted(img)))
        found = False
        for res in resources:
            for spec in pod_specs(res):
                for c in spec.get("containers", []) + spec.get("initContainers", []):
                    name, tag, digest = split_image(c.get("image", ""))
                    if name != img["name"]:
                        continue
                    found = True
                    name = img.get("newName", name)
                    tag = img.get("newTag", tag)
                    digest = img.get("digest", digest)
                    c["image"] = name + ("@" + digest if digest else ":" + tag if tag else "")
        if not found:
            raise KustomizeError("%s: image %s is used by no container" % (kpath, img["name"]))
    return resources
