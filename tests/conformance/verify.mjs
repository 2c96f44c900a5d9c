// Checks what the conformance suite's own --expected-failures evaluation
// does not, over the results of every revision run (scripts/conformance.sh):
//
//   - every entry of the expected-failures file says why (a `# ...` comment
//     on its line), and none excuses wire-schema-valid;
//   - every wire-schema-valid check, in every scenario of every revision,
//     passed (the suite would let a baseline excuse it: ours may not);
//   - no check failed (or warned) that the file does not name, whether or
//     not the revision scores its scenario;
//   - every entry matched a failing (or warning) check in at least one
//     revision: an entry whose check passes everywhere or is never run any
//     more is stale (the suite only sees a per-check entry go stale when
//     that check passes in the run at hand);
//
// and prints, per revision, the scenarios and checks that passed and failed.
//
// Usage: node verify.mjs EXPECTED_FAILURES.yaml REVISION=RESULTS_DIR...
// (run with the suite's node_modules on NODE_PATH for the yaml package).
// Exits 1 when a rule is broken.

import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(join(process.env.NODE_PATH ?? ".", "noop.js"));
const YAML = require("yaml");

const [baselinePath, ...runs] = process.argv.slice(2);
if (!baselinePath || runs.length === 0) {
  console.error("usage: node verify.mjs EXPECTED_FAILURES.yaml REVISION=RESULTS_DIR...");
  process.exit(2);
}

const problems = [];
const failing = (c) => c.status === "FAILURE" || c.status === "WARNING";

// The file: entries, each with a reason on its line.
const text = readFileSync(baselinePath, "utf8");
const entries = (YAML.parse(text)?.server ?? []).map(String);
for (const line of text.split("\n")) {
  const m = line.match(/^\s*-\s+([^\s#]+)\s*(#\s*(.*))?$/);
  if (!m) continue;
  if (!m[3] || !m[3].trim()) problems.push(`${baselinePath}: entry ${m[1]} says no reason (add '# why' on its line)`);
}
for (const e of entries) {
  if (e.endsWith(":wire-schema-valid")) problems.push(`${baselinePath}: ${e} excuses wire-schema-valid, which must pass everywhere`);
}

// The results: <dir>/server-<scenario>-<timestamp>/checks.json.
const matched = new Set();
for (const run of runs) {
  const [revision, dir] = run.split("=");
  const scenarios = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, "checks.json")))
    .map((d) => ({
      name: d.name.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, ""),
      checks: JSON.parse(readFileSync(join(dir, d.name, "checks.json"), "utf8")),
    }));
  if (scenarios.length === 0) problems.push(`${revision}: no results in ${dir}`);
  let passed = 0, failed = 0, expected = 0, scenariosPassed = 0, wire = 0;
  for (const { name, checks } of scenarios) {
    let scenarioFailed = false;
    for (const c of checks) {
      if (c.id === "wire-schema-valid") {
        wire++;
        if (c.status !== "SUCCESS") {
          problems.push(`${revision}: ${name}: wire-schema-valid is ${c.status}: ${JSON.stringify(c.details ?? c.errorMessage)}`);
        }
      }
      if (c.status === "SUCCESS") passed++;
      if (!failing(c)) continue;
      failed++;
      scenarioFailed = true;
      const key = `${name}:${c.id}`;
      if (entries.includes(name) || entries.includes(key)) {
        expected++;
        matched.add(entries.includes(name) ? name : key);
      } else {
        // Scored or not (extension, pending, added after release): no
        // failure outside the file.
        problems.push(`${revision}: ${key} is ${c.status} and not in ${baselinePath}: ${c.errorMessage ?? ""}`);
      }
    }
    if (!scenarioFailed) scenariosPassed++;
  }
  console.log(
    `conformance ${revision}: ${scenariosPassed} of ${scenarios.length} scenarios passed; ` +
      `checks: ${passed} passed, ${failed} failed (${expected} expected, ${failed - expected} not); ` +
      `wire-schema-valid: ${wire} checks`,
  );
}
for (const e of entries) {
  if (!matched.has(e)) problems.push(`${baselinePath}: ${e} failed in no revision: remove it (stale)`);
}

for (const p of problems) console.log(`FAIL  ${p}`);
console.log(problems.length === 0 ? "verify: the expected-failures file holds" : `verify: ${problems.length} problem(s)`);
process.exit(problems.length === 0 ? 0 : 1);
