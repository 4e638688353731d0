#!/usr/bin/env node
// Enforces the Nx project tag rules in nx.json ("boundaries.rules"): a project may depend only on
// projects carrying a tag its own tag allows. Dependencies are taken from `nx graph` (package.json
// and the imports Nx sees) and, to be sure, from every `@baton/*` import in non-test sources.
// Also checks that every imported workspace package is declared in the importer's package.json.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(import.meta.dirname, '../..');
const rules = JSON.parse(readFileSync(join(root, 'nx.json'), 'utf8')).boundaries.rules;
const dir = mkdtempSync(join(tmpdir(), 'baton-graph-'));
const graphFile = join(dir, 'graph.json');
const nxBin = createRequire(import.meta.url).resolve('nx/bin/nx.js');
execFileSync(process.execPath, [nxBin, 'graph', `--file=${graphFile}`], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' } });
const graph = JSON.parse(readFileSync(graphFile, 'utf8')).graph;
rmSync(dir, { recursive: true, force: true });

const projects = new Map();
for (const [name, node] of Object.entries(graph.nodes)) {
  const tags = (node.data.tags ?? []).filter((t) => t.startsWith('type:'));
  projects.set(name, { root: node.data.root, tags });
}

const problems = [];
for (const [name, { tags }] of projects) {
  if (tags.length !== 1) problems.push(`${name}: needs exactly one type:* tag in package.json "nx.tags", has [${tags.join(', ')}]`);
  for (const tag of tags) if (!(tag in rules)) problems.push(`${name}: tag ${tag} has no rule in nx.json boundaries.rules`);
}

function walk(dirPath, out = []) {
  for (const entry of readdirSync(dirPath)) {
    const path = join(dirPath, entry);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (/\.ts$/.test(entry) && !/\.(spec|test)\.ts$/.test(entry) && !entry.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const edges = new Map();
const addEdge = (from, to, why) => {
  if (from === to || !projects.has(to)) return;
  if (!edges.has(from)) edges.set(from, new Map());
  if (!edges.get(from).has(to)) edges.get(from).set(to, why);
};
for (const [from, deps] of Object.entries(graph.dependencies)) for (const dep of deps) addEdge(from, dep.target, 'nx graph');
for (const [name, { root: projectRoot }] of projects) {
  const pkg = JSON.parse(readFileSync(join(root, projectRoot, 'package.json'), 'utf8'));
  const declared = new Set(Object.keys({ ...pkg.dependencies, ...pkg.devDependencies }));
  let files = [];
  try {
    files = walk(join(root, projectRoot, 'src'));
  } catch {
    continue;
  }
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"](@baton\/[a-z0-9-]+)/g)) {
      const target = match[1];
      addEdge(name, target, file.slice(root.length + 1));
      if (!declared.has(target) && target !== name) problems.push(`${name}: ${file.slice(root.length + 1)} imports ${target}, which its package.json does not declare`);
    }
  }
}

for (const [from, targets] of edges) {
  const allowed = new Set(projects.get(from).tags.flatMap((tag) => rules[tag] ?? []));
  for (const [to, why] of targets) {
    const toTags = projects.get(to).tags;
    if (!toTags.some((t) => allowed.has(t))) {
      problems.push(`${from} (${projects.get(from).tags.join(',')}) must not depend on ${to} (${toTags.join(',')}) — found in ${why}`);
    }
  }
}

if (problems.length > 0) {
  console.error(`Project boundaries: ${problems.length} problem(s)\n  ${[...new Set(problems)].join('\n  ')}`);
  process.exit(1);
}
console.log(`Project boundaries: ${projects.size} projects, ${[...edges.values()].reduce((n, m) => n + m.size, 0)} dependencies, all allowed by nx.json rules.`);
