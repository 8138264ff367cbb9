#!/usr/bin/env python3
"""Checks a finished WorkflowRun against tests/e2e/expectations.yaml.

usage: kubectl get workflowruns.datajump.io -n NS -l datajump.io/workflow=NAME -o json \
         | verify_run.py --expect tests/e2e/expectations.yaml --workflow tests/e2e/sample-workflow.yaml

Reads a WorkflowRun, or a List of them (the newest is checked), on stdin. Checks the run phase,
every task's phase and attempt count, that no task is missing or unexpected, and (with
checkOrdering) that each task started only after all its dependencies completed.
Prints one line per problem; exit 1 when there is any, 2 on unusable input.
"""
import argparse
import json
import sys
from datetime import datetime

import yaml


def load_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        print(f"verify_run: cannot read {path}: {err}", file=sys.stderr)
        sys.exit(2)


def newest_run(doc):
    items = doc.get("items") if doc.get("kind", "").endswith("List") else [doc]
    if not items:
        print("verify_run: no WorkflowRun found", file=sys.stderr)
        sys.exit(2)
    return max(items, key=lambda r: r.get("metadata", {}).get("creationTimestamp", ""))


def ts(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def problems(run, expect, workflow):
    out = []
    name = run.get("metadata", {}).get("name", "?")
    status = run.get("status") or {}
    want_phase = expect["run"]["phase"]
    if status.get("phase") != want_phase:
        out.append(f"run {name}: phase {status.get('phase')!r}, expected {want_phase!r} ({status.get('message', '')})")
    tasks = {t.get("name"): t for t in status.get("tasks", [])}
    for task, want in expect["tasks"].items():
        got = tasks.get(task)
        if got is None:
            out.append(f"run {name}: task {task} missing from status.tasks")
            continue
        if got.get("phase") != want["phase"]:
            out.append(f"task {task}: phase {got.get('phase')!r}, expected {want['phase']!r} ({got.get('message', '')})")
        if got.get("attempts", 0) > want["maxAttempts"]:
            out.append(f"task {task}: {got.get('attempts')} attempts, expected at most {want['maxAttempts']}")
    for task in sorted(set(tasks) - set(expect["tasks"])):
        out.append(f"task {task}: not expected")
    if expect.get("checkOrdering"):
        for spec in workflow["spec"]["tasks"]:
            me = tasks.get(spec["name"])
            if me is None or not me.get("startTime"):
                continue
            for dep in spec.get("dependsOn", []):
                done = ts((tasks.get(dep) or {}).get("completionTime"))
                if done is None or ts(me["startTime"]) < done:
                    out.append(f"task {spec['name']}: started {me['startTime']} before dependency {dep} completed ({done})")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--workflow", required=True)
    args = parser.parse_args()
    expect, workflow = load_yaml(args.expect), load_yaml(args.workflow)
    try:
        doc = json.load(sys.stdin)
    except json.JSONDecodeError as err:
        print(f"verify_run: stdin is not JSON: {err}", file=sys.stderr)
        sys.exit(2)
    run = newest_run(doc)
    found = problems(run, expect, workflow)
    for line in found:
        print(line)
    if found:
        sys.exit(1)
    print(f"run {run['metadata']['name']}: {len(expect['tasks'])} tasks as expected")


if __name__ == "__main__":
    main()
