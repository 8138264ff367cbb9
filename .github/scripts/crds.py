#!/usr/bin/env python3
"""Operator CRDs for CI: fetch them at their pinned commits, and turn them into JSON schemas.

  crds.py fetch DEST [--sources FILE] [--base-url URL]
      Downloads every file listed in .github/crd-sources.txt from `URL/<repo>/<commit>/<path>`
      (default https://raw.githubusercontent.com; a file:// URL works for a local mirror) and
      writes one CRD per file into DEST, named `<group>_<plural>.yaml` as in ../shared/crds.
      Multi-document sources (MySQL's deploy-crds.yaml, ECK's all-crds.yaml) are split.

  crds.py schemas SRC... --out DIR
      Writes a kubeconform schema `DIR/<group>/<kind>_<version>.json` (kind lower-cased) for every
      served version of every CRD found in the SRC files or directories. Strict like the API
      server's field validation: an object schema that lists properties rejects unknown ones,
      unless it says x-kubernetes-preserve-unknown-fields.

Exit status: 0 on success, 1 on any failure (the message names the source or file).
"""
import argparse
import copy
import json
import pathlib
import sys
import urllib.request

import yaml

DEFAULT_BASE = "https://raw.githubusercontent.com"


def fail(msg):
    print(f"crds.py: {msg}", file=sys.stderr)
    sys.exit(1)


def read_sources(path):
    """(file, repo, commit, path) rows of crd-sources.txt, comments and blank lines skipped."""
    rows = []
    for n, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 4 or len(parts[2]) != 40:
            fail(f"{path}:{n}: expected `file repository commit(40 hex) path`, got {line!r}")
        rows.append(tuple(parts))
    return rows


def crd_name(doc):
    return f"{doc['spec']['group']}_{doc['spec']['names']['plural']}.yaml"


def fetch(dest, sources, base):
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for file, repo, commit, path in read_sources(sources):
        wanted.setdefault(f"{base.rstrip('/')}/{repo}/{commit}/{path}", set()).add(file)
    for url, files in wanted.items():
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                text = resp.read().decode("utf-8")
        except OSError as err:
            fail(f"cannot download {url}: {err}")
        found = set()
        for doc in yaml.safe_load_all(text):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            name = crd_name(doc)
            if name in files:
                (dest / name).write_text(yaml.safe_dump(doc, sort_keys=False))
                found.add(name)
        if found != files:
            fail(f"{url} has no CRD for {', '.join(sorted(files - found))}")
        for name in sorted(found):
            print(f"fetched {name}")


def strict(schema):
    """A copy of an OpenAPI v3 schema where objects with listed properties reject unknown keys.

    As on the API server, apiVersion, kind and metadata are always allowed at the root, and
    metadata is checked as ObjectMeta (here: left open), whatever the CRD's schema says of it.
    """
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    props = schema.setdefault("properties", {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props["metadata"] = {"type": "object"}
    return schema


def crd_docs(paths):
    for p in paths:
        p = pathlib.Path(p)
        files = sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) if p.is_dir() else [p]
        for f in files:
            try:
                docs = list(yaml.safe_load_all(f.read_text()))
            except yaml.YAMLError as err:
                fail(f"{f}: not YAML: {err}")
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    yield f, doc


def schemas(paths, out):
    out = pathlib.Path(out)
    count = 0
    for f, doc in crd_docs(paths):
        group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
        for version in doc["spec"].get("versions", []):
            if not version.get("served"):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                fail(f"{f}: {kind} {version['name']} has no openAPIV3Schema")
            target = out / group / f"{kind.lower()}_{version['name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(strict(schema), indent=1))
            count += 1
    if count == 0:
        fail(f"no CustomResourceDefinition found in {' '.join(map(str, paths))}")
    print(f"wrote {count} schema(s) to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("dest")
    f.add_argument("--sources", default=str(pathlib.Path(__file__).resolve().parent.parent / "crd-sources.txt"))
    f.add_argument("--base-url", default=DEFAULT_BASE)
    s = sub.add_parser("schemas")
    s.add_argument("src", nargs="+")
    s.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.cmd == "fetch":
        fetch(args.dest, args.sources, args.base_url)
    else:
        schemas(args.src, args.out)


if __name__ == "__main__":
    main()
