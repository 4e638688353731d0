// Where a node keeps its state (~/.baton, or $BATON_HOME) and its persistent node id.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ID_PATTERN, nodeId, type NodeId } from '@baton/contracts';
export { batonHome, loadOrCreateSecret } from '@baton/control-plane';

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

