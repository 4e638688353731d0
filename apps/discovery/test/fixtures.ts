import { BATON_VERSION, type NodeAnnouncement, type NodeId } from '@baton/contracts';

/** A valid announcement for tests (a test double of what `baton node` publishes). */
export function announcement(id: string, patch: Partial<NodeAnnouncement> = {}): NodeAnnouncement {
  return {
    id: id as NodeId,
    name: id,
    hostname: 'host',
    pid: 100,
    version: BATON_VERSION,
    protocolVersion: 1,
    endpoints: [],
    memory: { totalBytes: 16e9, availableBytes: 8e9, budgetBytes: 12e9 },
    cpu: { model: 'cpu', threads: 8, arch: 'arm64', features: ['neon'] },
    computeBytesPerSec: null,
    models: [],
    rdmaDevices: [],
    startedAtMs: 1,
    ...patch,
  };
}

