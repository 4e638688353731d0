// Where a Baton process keeps its state on this machine (~/.baton, or $BATON_HOME) and the
// cluster secret the data plane's handshake uses.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function batonHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.BATON_HOME && env.BATON_HOME.trim() !== '' ? env.BATON_HOME : join(homedir(), '.baton');
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
