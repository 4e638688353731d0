// The wait line for KV room: strictly first come first served, bounded waits that end with the
// latest numbers, an admission that lands during its last attempt still counts, errors reach
// only their own waiter.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AdmissionQueue } from './admission-queue.js';

type Answer = { admitted: boolean; note: string };

describe('AdmissionQueue', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('admits in arrival order and stops at the first that does not fit', async () => {
    const line = new AdmissionQueue<number, Answer>();
    const answers: string[] = [];
    const full = { admitted: false, note: 'full' };
    for (const size of [5, 1, 1]) void line.wait(`r${size}-${answers.length}`, size, full, 10_000).then((a) => answers.push(`${size}:${a.note}`));
    let room = 3;
    const attempt = async ({ request }: { request: number }) => {
      if (request > room) return { retry: { admitted: false, note: `need ${request}, have ${room}` } };
      room -= request;
      return { admitted: true, note: 'in' };
    };
    await line.drain(attempt);
    // The head (5) does not fit: the small ones behind it wait too.
    expect(answers).toEqual([]);
    expect(line.length).toBe(3);
    expect(line.peek()!.fallback.note).toBe('need 5, have 3');
    room = 7;
    await line.drain(attempt);
    await Promise.resolve();
    expect(answers).toEqual(['5:in', '1:in', '1:in']);
    expect(line.length).toBe(0);
  });

  it('ends a wait at its deadline with the latest numbers', async () => {
    const line = new AdmissionQueue<number, Answer>();
    const answer = line.wait('a', 1, { admitted: false, note: 'first' }, 1000);
    await line.drain(async () => ({ retry: { admitted: false, note: 'latest' } }));
    vi.advanceTimersByTime(1000);
    await expect(answer).resolves.toEqual({ admitted: false, note: 'latest' });
    expect(line.length).toBe(0);
  });

  it('keeps an admission that completes after the deadline passed during the attempt', async () => {
    const line = new AdmissionQueue<number, Answer>();
    const answer = line.wait('a', 1, { admitted: false, note: 'full' }, 100);
    let finish!: (a: Answer) => void;
    const draining = line.drain(() => new Promise<Answer>((resolve) => (finish = resolve)));
    vi.advanceTimersByTime(500); // deadline passes while the shards confirm
    finish({ admitted: true, note: 'late but in' });
    await draining;
    await expect(answer).resolves.toEqual({ admitted: true, note: 'late but in' });
  });

  it('lets a waiter whose time ran out during a failed attempt go with the numbers', async () => {
    const line = new AdmissionQueue<number, Answer>();
    const answer = line.wait('a', 1, { admitted: false, note: 'old' }, 100);
    let finish!: (a: { retry: Answer }) => void;
    const draining = line.drain(() => new Promise((resolve) => (finish = resolve)));
    vi.advanceTimersByTime(500);
    finish({ retry: { admitted: false, note: 'new' } });
    await draining;
    await expect(answer).resolves.toEqual({ admitted: false, note: 'new' });
    expect(line.length).toBe(0);
  });

  it('gives an attempt error to its own waiter only, and carries on with the next', async () => {
    const line = new AdmissionQueue<number, Answer>();
    const first = line.wait('a', 1, { admitted: false, note: '' }, 1000);
    const second = line.wait('b', 2, { admitted: false, note: '' }, 1000);
    await line.drain(async ({ request }) => {
      if (request === 1) throw new Error('no plan');
      return { admitted: true, note: 'ok' };
    });
    await expect(first).rejects.toThrow('no plan');
    await expect(second).resolves.toEqual({ admitted: true, note: 'ok' });
  });

  it('cancels a waiter by key (a retried request) and clears the line', async () => {
    const line = new AdmissionQueue<number, Answer>();
    const a = line.wait('a', 1, { admitted: false, note: 'a' }, 1000);
    const b = line.wait('b', 1, { admitted: false, note: 'b' }, 1000);
    expect(line.cancel('a', (w) => ({ ...w.fallback, note: 'retried' }))).toBe(1);
    await expect(a).resolves.toEqual({ admitted: false, note: 'retried' });
    line.clear((w) => w.fallback);
    await expect(b).resolves.toEqual({ admitted: false, note: 'b' });
    expect(line.length).toBe(0);
  });

  it('runs a drain asked for during another once that one ends, never two at once', async () => {
    const line = new AdmissionQueue<number, Answer>();
    let room = 0;
    let inFlight = 0;
    let most = 0;
    const results: Promise<Answer>[] = [1, 1].map((n, i) => line.wait(String(i), n, { admitted: false, note: '' }, 10_000));
    const attempt = async ({ request }: { request: number }) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await Promise.resolve();
      inFlight--;
      if (request > room) return { retry: { admitted: false, note: 'full' } };
      room -= request;
      return { admitted: true, note: 'in' };
    };
    const first = line.drain(attempt);
    room = 2;
    const second = line.drain(attempt);
    await Promise.all([first, second]);
    expect(most).toBe(1);
    await expect(Promise.all(results)).resolves.toEqual([{ admitted: true, note: 'in' }, { admitted: true, note: 'in' }]);
  });
});
