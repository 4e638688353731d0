// Where a node keeps its state (~/.baton, or $BATON_HOME) and its persistent node id.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { ID_PATTERN, nodeId, type NodeId } from '@baton/contracts';

export function batonHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.BATON_HOME && env.BATON_HOME.trim() !== '' ? env.BATON_HOME : join(homedir(), '.baton');
}

/** A readable, unique default id: the host name's safe characters plus 6 random hex digits. */
export function newNodeId(host = hostname()): NodeId {
  const base = host.toLowerCase().replace(/\.local$/, '').replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'node';
  return nodeId(`${base}-${randomBytes(3).toString('hex')}`);
}

/**
 * The node id kept in <home>/node-id: created on first start and reused after, so a machine
 * keeps its identity across restarts. `override` (the --id flag) wins and is not written.
 */
export function loadOrCreateNodeId(home: string, override?: string): NodeId {
  if (override !== undefined) return nodeId(override);
  const file = join(home, 'node-id');
  if (existsSync(file)) {
    const stored = readFileSync(file, 'utf8').trim();
    if (ID_PATTERN.test(stored)) return stored as NodeId;
    throw new Error(`${file} holds an invalid node id ${JSON.stringify(stored)}; delete the file to get a new id, or pass --id`);
  }
  mkdirSync(home, { recursive: true });
  const id = newNodeId();
  writeFileSync(file, `${id}\n`, { mode: 0o644 });
  return id;
}

/**
 * The cluster secret every node's data-plane handshake uses: $BATON_SECRET, else <home>/secret
 * (created on first start). Copy that file (or set BATON_SECRET) on every machine of a cluster.
 */
export function loadOrCreateSecret(home: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.BATON_SECRET && env.BATON_SECRET.length > 0) return env.BATON_SECRET;
  const file = join(home, 'secret');
  if (existsSync(file)) {
    const stored = readFileSync(file, 'utf8').trim();
    if (stored.length >= 16) return stored;
    throw new Error(`${file} holds a secret shorter than 16 characters; delete it to make a new one, or set BATON_SECRET`);
  }
  mkdirSync(home, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}
