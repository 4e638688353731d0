// The RDMA backend behind the Connection interface. After the TCP handshake the connecting side
// offers RDMA over the TCP connection (queue-pair details in reserved CONTROL frames); if both
// ends can, each moves its queue pair INIT→RTR→RTS and frames switch to the RDMA channel
// (cpp/rdma_channel.cc: 4 KB slots, fragmentation, credits). Any failure before the switch falls
// back to TCP with a logged reason; a failure after it closes the connection (frames may be lost).
//
// Ordering across the switch: each side sends a SWITCH marker over TCP and sends over RDMA only
// after it; each side delivers RDMA frames only after receiving the peer's SWITCH, so every frame
// sent over TCP earlier is delivered first.
import { decodeFrameHeader, emptyFrameHeader, FrameKind, PayloadDType, type FrameHeader } from '@baton/contracts';
import { loadNative } from './native.js';

/** 'auto': use RDMA when this machine has a device (system verbs library), else TCP silently. */
export type RdmaMode = 'off' | 'auto' | 'fake' | 'fake-apple';

export interface RdmaSettings {
  mode: RdmaMode;
  /** Device name; default: the first one the provider lists. */
  device?: string;
  /** Receive slots per side (equal on both ends). Default 64. */
  slots: number;
  /** Bytes per slot message. Default 4096 (Apple's limit). */
  slotBytes: number;
}

/** CONTROL frames with this sequenceId are the transport's own (never emitted as 'frame'). */
export const TRANSPORT_CONTROL_SEQUENCE = 0xffffffff;

interface ChannelEndpoint {
  qpNum: number;
  lid: number;
  gid: string;
  psn: number;
  mtuBytes: number;
  slots: number;
}

interface NativeRdmaChannel {
  endpoint(): ChannelEndpoint;
  connect(peer: ChannelEndpoint): void;
  send(header: Uint8Array, payload?: ArrayBufferView): number;
  progress(): Buffer[];
  stats(): { framesSent: number; framesReceived: number; fragmentsSent: number; fragmentsReceived: number; creditMessages: number; creditStalls: number; queuedBytes: number; state: string };
  close(): void;
}

type ControlMessage =
  | { type: 'offer'; provider: string; endpoint: ChannelEndpoint; slotBytes: number }
  | { type: 'accept'; endpoint: ChannelEndpoint }
  | { type: 'decline'; reason: string }
  | { type: 'switch' };

function provider(mode: RdmaMode): string {
  return mode === 'auto' ? 'system' : mode;
}

/** RDMA devices on this machine (system verbs library), for the node announcement. Never throws. */
export function rdmaDevices(): string[] {
  try {
    return loadNative().rdmaDevices('system');
  } catch {
    return [];
  }
}

/** Why RDMA is or is not usable here: { available, devices, reason }. */
export function rdmaStatus(mode: RdmaMode = 'auto'): { available: boolean; devices: string[]; reason: string } {
  if (mode === 'off') return { available: false, devices: [], reason: 'RDMA is turned off' };
  try {
    const native = loadNative();
    const devices = native.rdmaDevices(provider(mode));
    const reason = native.rdmaProviderStatus(provider(mode));
    return { available: devices.length > 0 && reason === '', devices, reason };
  } catch (error) {
    return { available: false, devices: [], reason: (error as Error).message };
  }
}

/** Runs the fake verbs provider's rule checks (state machine, registration, Apple's subset). */
export function rdmaFakeSelfTest(): string[] {
  return (loadNative() as unknown as { rdmaFakeSelfTest(): string[] }).rdmaFakeSelfTest();
}

function controlHeader(): FrameHeader {
  return { ...emptyFrameHeader(FrameKind.CONTROL), sequenceId: TRANSPORT_CONTROL_SEQUENCE, dtype: PayloadDType.NONE };
}

export function isTransportControl(header: FrameHeader): boolean {
  return header.kind === FrameKind.CONTROL && header.sequenceId === TRANSPORT_CONTROL_SEQUENCE;
}

/** What a Connection needs from its RDMA link. */
export interface RdmaHost {
  readonly remoteAddress: string;
  readonly maxFrameBytes: number;
  readonly highWaterMark: number;
  _sendTcp(header: FrameHeader, payload?: ArrayBufferView): boolean;
  _deliver(header: FrameHeader, payload: Buffer): void;
  _rdmaFailed(message: string): void;
  _rdmaDrain(): void;
  _log(message: string): void;
}

const active = new Set<RdmaLink>();

// A node that reconnects (or probes) a peer every few seconds would repeat the same fall-back
// reason forever: each distinct line is logged once per process.
const logged = new Set<string>();
function logOnce(host: RdmaHost, line: string): void {
  if (logged.has(line)) return;
  if (logged.size > 1000) logged.clear();
  logged.add(line);
  host._log(line);
}
let pollTimer: NodeJS.Timeout | undefined;
let pollImmediate: NodeJS.Immediate | undefined;
let lastActivity = 0;

function schedulePoll(): void {
  if (pollTimer || pollImmediate || active.size === 0) return;
  // Busy-poll (setImmediate) while frames flowed in the last 2 ms, else tick every millisecond.
  if (performance.now() - lastActivity < 2) {
    pollImmediate = setImmediate(pollAll);
  } else {
    pollTimer = setTimeout(pollAll, 1);
    pollTimer.unref();
  }
}

function pollAll(): void {
  pollTimer = undefined;
  pollImmediate = undefined;
  for (const link of active) link.pump();
  schedulePoll();
}

export class RdmaLink {
  private channel: NativeRdmaChannel | undefined;
  private sendingOverRdma = false;
  private deliveringFromRdma = false;
  private held: [FrameHeader, Buffer][] = [];
  private drainWanted = false;
  private negotiated: ((backend: 'rdma' | 'tcp') => void) | undefined;
  private readonly headerScratch = new Uint8Array(128);

  constructor(private readonly host: RdmaHost, private readonly settings: RdmaSettings) {}

  get sending(): boolean {
    return this.sendingOverRdma;
  }

  /** Connecting side: offer RDMA; resolves with the backend the connection ends up on. */
  offer(): Promise<'rdma' | 'tcp'> {
    const status = rdmaStatus(this.settings.mode);
    if (!status.available) {
      // 'auto' without devices is the ordinary case, not a failure: no log line.
      if (this.settings.mode !== 'auto') logOnce(this.host, `RDMA (${this.settings.mode}) unavailable, using TCP to ${this.host.remoteAddress}: ${status.reason}`);
      return Promise.resolve('tcp');
    }
    try {
      this.channel = this.open(status.devices);
    } catch (error) {
      logOnce(this.host, `RDMA set-up failed, using TCP to ${this.host.remoteAddress}: ${(error as Error).message}`);
      return Promise.resolve('tcp');
    }
    const done = new Promise<'rdma' | 'tcp'>((resolve) => (this.negotiated = resolve));
    this.control({ type: 'offer', provider: provider(this.settings.mode), endpoint: this.channel.endpoint(), slotBytes: this.settings.slotBytes });
    return done;
  }

  private open(devices: string[]): NativeRdmaChannel {
    const device = this.settings.device ?? devices[0]!;
    if (!devices.includes(device)) throw new Error(`no RDMA device "${device}" (have ${devices.join(', ')})`);
    const Channel = (loadNative() as unknown as { RdmaChannel: new (provider: string, device: string, options: object) => NativeRdmaChannel }).RdmaChannel;
    return new Channel(provider(this.settings.mode), device, { slots: this.settings.slots, slotBytes: this.settings.slotBytes, qpType: 'UC', maxFrameBytes: this.host.maxFrameBytes });
  }

  private control(message: ControlMessage): void {
    this.host._sendTcp(controlHeader(), Buffer.from(JSON.stringify(message)));
  }

  private fallBack(reason: string): void {
    logOnce(this.host, `RDMA to ${this.host.remoteAddress} failed, using TCP: ${reason}`);
    this.dispose();
    this.negotiated?.('tcp');
    this.negotiated = undefined;
  }

  /** A reserved CONTROL frame arrived over TCP. */
  onControl(payload: Buffer): void {
    let message: ControlMessage;
    try {
      message = JSON.parse(payload.toString('utf8')) as ControlMessage;
    } catch {
      this.host._log(`ignored a malformed transport control frame from ${this.host.remoteAddress}`);
      return;
    }
    try {
      switch (message.type) {
        case 'offer': {
          const status = rdmaStatus(this.settings.mode);
          if (!status.available || provider(this.settings.mode) !== message.provider || message.slotBytes !== this.settings.slotBytes || message.endpoint.slots !== this.settings.slots) {
            const reason = !status.available ? `RDMA unavailable at the listener: ${status.reason}` : `the listener's RDMA settings differ (provider ${provider(this.settings.mode)}, ${this.settings.slots} × ${this.settings.slotBytes} B slots)`;
            this.control({ type: 'decline', reason });
            return;
          }
          try {
            this.channel = this.open(status.devices);
            this.channel.connect(message.endpoint);
          } catch (error) {
            this.dispose();
            this.control({ type: 'decline', reason: (error as Error).message });
            return;
          }
          this.control({ type: 'accept', endpoint: this.channel.endpoint() });
          active.add(this);
          schedulePoll();
          return;
        }
        case 'accept':
          if (!this.channel) return;
          try {
            this.channel.connect(message.endpoint);
          } catch (error) {
            this.fallBack((error as Error).message);
            return;
          }
          active.add(this);
          this.switchSending();
          this.negotiated?.('rdma');
          this.negotiated = undefined;
          schedulePoll();
          return;
        case 'decline':
          this.fallBack(`the peer declined: ${message.reason}`);
          return;
        case 'switch':
          if (!this.channel) return;
          this.deliveringFromRdma = true;
          if (!this.sendingOverRdma) this.switchSending(); // the listening side answers the connector's switch
          this.pump();
          return;
      }
    } catch (error) {
      this.host._rdmaFailed(`RDMA control failed: ${(error as Error).message}`);
    }
  }

  private switchSending(): void {
    this.control({ type: 'switch' });
    this.sendingOverRdma = true;
  }

  /** Sends over RDMA. Returns false when the queue is over the high-water mark. */
  send(encodedHeader: Uint8Array, payload: ArrayBufferView | undefined): boolean {
    let queued: number;
    try {
      queued = this.channel!.send(encodedHeader, payload);
      this.pump();
    } catch (error) {
      this.host._rdmaFailed(`RDMA send failed: ${(error as Error).message}`);
      return false;
    }
    lastActivity = performance.now();
    if (queued >= this.host.highWaterMark) {
      this.drainWanted = true;
      return false;
    }
    return true;
  }

  /** Polls completions, posts queued fragments, delivers frames in order. */
  pump(): void {
    const channel = this.channel;
    if (!channel) return;
    let list: Buffer[];
    try {
      list = channel.progress();
    } catch (error) {
      this.host._rdmaFailed(`RDMA channel failed: ${(error as Error).message}`);
      return;
    }
    if (list.length > 0) lastActivity = performance.now();
    for (let i = 0; i < list.length; i += 2) this.held.push([decodeFrameHeader(list[i]!), list[i + 1]!]);
    if (this.deliveringFromRdma && this.held.length > 0) {
      const frames = this.held;
      this.held = [];
      for (const [header, payload] of frames) this.host._deliver(header, payload);
    }
    if (this.drainWanted && this.channel && this.channel.stats().queuedBytes <= this.host.highWaterMark / 2) {
      this.drainWanted = false;
      this.host._rdmaDrain();
    }
  }

  stats(): ReturnType<NativeRdmaChannel['stats']> | undefined {
    return this.channel?.stats();
  }

  dispose(): void {
    active.delete(this);
    this.channel?.close();
    this.channel = undefined;
    this.sendingOverRdma = false;
  }
}
