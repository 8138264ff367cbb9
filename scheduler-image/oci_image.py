#!/usr/bin/env python3
"""Writes the scheduler image as an OCI archive (an OCI image layout in one tar) without a
container engine: one layer holding the static binary and the few files the distroless base
would add, and an image config whose user, entrypoint, exposed ports, environment and labels
are read from the final stage of scheduler-image/Dockerfile, so the two builds cannot drift.

Called by build-image.sh; standard library only. The output is reproducible: every timestamp
is the commit time (SOURCE_DATE_EPOCH), owners are numeric, entries sorted.

What the distroless `static-debian12:nonroot` base adds, and what this image does about it:
- /etc/passwd, /etc/group: written here (root and nonroot 65532), so the user has a name;
  the binary itself never looks a user up.
- the CA bundle: copied from the build host's ca-certificates (/etc/ssl/certs), for outbound
  HTTPS to an object store with a public certificate. In-cluster API access does not need it:
  it trusts the ServiceAccount's ca.crt.
- time zones: not added. The binary carries the IANA database (chrono-tz), which is what it
  evaluates `timezone:` with.
- /tmp and the nonroot home: empty directories (the chart mounts an emptyDir on /tmp anyway).
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile

NONROOT = 65532
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def die(msg):
    sys.exit(f"oci_image.py: {msg}")


def final_stage(dockerfile):
    """The instructions of the Dockerfile's last stage, continuation lines joined, with the
    defaults of the ARGs declared in it."""
    with open(dockerfile, encoding="utf-8") as f:
        text = f.read()
    lines, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        lines.append(cur + line)
        cur = ""
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    if not starts:
        die(f"{dockerfile}: no FROM instruction")
    stage = lines[starts[-1] + 1:]
    args = {}
    instructions = []
    for line in stage:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG":
            name, _, default = rest.strip().partition("=")
            args[name] = default
        instructions.append((word, rest.strip()))
    return instructions, args


def substitute(value, args):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), value)


def label_pairs(rest, args):
    """`k="v" k2="v2"` of a LABEL instruction."""
    out = {}
    for m in re.finditer(r'([\w.\-]+)=("(?:[^"\\]|\\.)*"|\S+)', rest):
        value = m.group(2)
        if value.startswith('"'):
            value = json.loads(value)
        out[m.group(1)] = substitute(value, args)
    return out


def image_config(dockerfile, overrides):
    instructions, args = final_stage(dockerfile)
    args.update(overrides)
    config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                      f"SSL_CERT_FILE={CA_BUNDLE}"],
              "Labels": {}}
    for word, rest in instructions:
        if word == "USER":
            config["User"] = substitute(rest, args)
        elif word == "EXPOSE":
            for port in rest.split():
                port = substitute(port, args)
                config.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
        elif word == "ENTRYPOINT":
            try:
                config["Entrypoint"] = json.loads(rest)
            except json.JSONDecodeError:
                die(f"{dockerfile}: ENTRYPOINT must be in exec (JSON array) form, got {rest}")
        elif word == "CMD":
            config["Cmd"] = json.loads(rest)
        elif word == "WORKDIR":
            config["WorkingDir"] = substitute(rest, args)
        elif word == "ENV":
            name, _, value = rest.partition("=")
            config["Env"].append(f"{name}={substitute(value.strip(chr(34)), args)}")
        elif word == "LABEL":
            config["Labels"].update(label_pairs(rest, args))
    for need in ("User", "Entrypoint"):
        if need not in config:
            die(f"{dockerfile}: the final stage has no {need.upper()}")
    return config


class Layer:
    """A reproducible tar layer built in memory (the binary is a few tens of MiB)."""

    def __init__(self, mtime):
        self.mtime = mtime
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, path, kind, mode, owner=0):
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.mtime = kind, mode, self.mtime
        info.uid = info.gid = owner
        info.uname = info.gname = ""
        return info

    def dir(self, path, mode=0o755, owner=0):
        self.tar.addfile(self._info(path, tarfile.DIRTYPE, mode, owner))

    def data(self, path, data, mode=0o644):
        info = self._info(path, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def close(self):
        self.tar.close()
        return self.buf.getvalue()


def build_layer(binary, target, mtime):
    layer = Layer(mtime)
    with open(binary, "rb") as f:
        program = f.read()
    if b"/lib64/ld-linux" in program[:4096] or b"/lib/ld-linux" in program[:4096]:
        die(f"{binary} is dynamically linked; build it with build-static.sh")
    if not os.path.isfile(CA_BUNDLE):
        die(f"{CA_BUNDLE} is missing on this host; apt-get install ca-certificates")
    with open(CA_BUNDLE, "rb") as f:
        bundle = f.read()
    for d in ("etc", "etc/ssl", "etc/ssl/certs", "home"):
        layer.dir(d)
    layer.data("etc/group", f"root:x:0:\nnonroot:x:{NONROOT}:\n".encode())
    layer.data("etc/passwd", (f"root:x:0:0:root:/root:/sbin/nologin\n"
                              f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n").encode())
    layer.data("etc/ssl/certs/ca-certificates.crt", bundle)
    layer.dir("home/nonroot", 0o700, NONROOT)
    layer.dir("tmp", 0o1777)
    layer.data(target.lstrip("/"), program, 0o755)
    return layer.close()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_archive(out, ref, config_obj, layer_tar, mtime):
    layer_gz = gzip.compress(layer_tar, compresslevel=6, mtime=0)
    config_obj["rootfs"] = {"type": "layers", "diff_ids": [digest(layer_tar)]}
    config = json.dumps(config_obj, sort_keys=True, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(layer_gz), "size": len(layer_gz)}],
        "annotations": {k: v for k, v in config_obj["config"]["Labels"].items()
                        if k.startswith("org.opencontainers.image.")},
    }, sort_keys=True, separators=(",", ":")).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(manifest), "size": len(manifest),
                       "platform": {"architecture": config_obj["architecture"], "os": "linux"},
                       # containerd names an imported image after the first; the OCI
                       # annotation keeps the tag for other tools.
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}}],
    }, sort_keys=True, separators=(",", ":")).encode()
    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
    files += [(f"blobs/sha256/{digest(b)[7:]}", b) for b in (layer_gz, config, manifest)]
    tmp = out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
    return digest(manifest)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dockerfile", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--ref", required=True, help="image reference, e.g. harbor.example.com/datajump/scheduler:0.1.0")
    p.add_argument("--out", required=True)
    p.add_argument("--arg", action="append", default=[], help="NAME=VALUE for the Dockerfile's ARGs")
    p.add_argument("--mtime", type=int, default=int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    a = p.parse_args()
    if ":" not in a.ref.rsplit("/", 1)[-1]:
        die(f"--ref {a.ref}: needs a tag")
    overrides = dict(kv.split("=", 1) for kv in a.arg)
    config = image_config(a.dockerfile, overrides)
    entry = config["Entrypoint"][0]
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    created = __import__("datetime").datetime.fromtimestamp(a.mtime, __import__("datetime").timezone.utc)
    config_obj = {"architecture": arch, "os": "linux", "config": config,
                  "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "history": [{"created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "created_by": "scheduler-image/build-image.sh"}]}
    layer = build_layer(a.binary, entry, a.mtime)
    print(write_archive(a.out, a.ref, config_obj, layer, a.mtime))


if __name__ == "__main__":
    main()
