#!/usr/bin/env python3
"""Validates every manifest in this folder offline.

Built-in kinds go through kubernetes-validate (bundled OpenAPI schemas,
strict: unknown fields fail). KEDA kinds go through schemas/keda.json. The
ConfigMap that kustomization.yaml generates is built here the way kustomize
builds it and validated too. Exit 0 when every document is valid; each
problem is printed as file: kind/name: message.

usage: python3 validate.py [KUBERNETES_VERSION]
"""
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = pathlib.Path(__file__).resolve().parent
VERSION = sys.argv[1] if len(sys.argv) > 1 else "1.33.0"
KEDA = json.loads((HERE / "schemas" / "keda.json").read_text())


def documents():
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    files = list(kustomization["resources"])
    # The hand-offs commented out in kustomization.yaml are examples too.
    files += [f for f in ("keda-prometheus.yaml", "hpa-prometheus-adapter.yaml") if f not in files]
    for f in files:
        for doc in yaml.safe_load_all((HERE / f).read_text()):
            if doc is not None:
                yield f, doc
    for gen in kustomization.get("configMapGenerator", []):
        data = {name: (HERE / name).read_text() for name in gen["files"]}
        yield "kustomization.yaml", {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": gen["name"], "namespace": kustomization["namespace"]},
            "data": data,
        }
    for gen in kustomization.get("secretGenerator", []):
        yield "kustomization.yaml", {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": gen["name"], "namespace": kustomization["namespace"]},
            "type": "Opaque",
            "stringData": {name: (HERE / name).read_text() for name in gen["files"]},
        }


def main():
    problems, kinds = [], []
    for file, doc in documents():
        what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        kinds.append(doc.get("kind"))
        if doc.get("apiVersion", "").startswith("keda.sh/"):
            schema = {**KEDA, "$ref": f"#/$defs/{doc.get('kind')}"}
            if doc.get("kind") not in KEDA["$defs"]:
                problems.append(f"{file}: {what}: no schema for this KEDA kind")
                continue
            for e in jsonschema.Draft202012Validator(schema).iter_errors(doc):
                problems.append(f"{file}: {what}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
            continue
        try:
            kubernetes_validate.validate(doc, VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{file}: {what}: {'/'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"{file}: {what}: no schema: {e}")
    for p in problems:
        print(p)
    print(f"validated {len(kinds)} documents: {', '.join(sorted(set(kinds)))}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
