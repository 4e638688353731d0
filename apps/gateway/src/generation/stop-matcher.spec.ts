import { describe, expect, it } from 'vitest';
import { StopMatcher } from './stop-matcher.js';

/** Feeds the pieces; returns everything emitted, whether it stopped, and the pieces emitted before the stop. */
function run(stops: string[], pieces: string[]): { text: string; stopped: boolean; emitted: string[] } {
  const m = new StopMatcher(stops);
  const emitted: string[] = [];
  for (const p of pieces) {
    const r = m.push(p);
    emitted.push(r.text);
    if (r.stopped) return { text: emitted.join(''), stopped: true, emitted };
  }
  emitted.push(m.flush());
  return { text: emitted.join(''), stopped: false, emitted };
}

describe('StopMatcher', () => {
  it.each([
    { stops: [], pieces: ['a', 'b'], text: 'ab', stopped: false },
    { stops: ['END'], pieces: ['abcEND', 'x'], text: 'abc', stopped: true },
    { stops: ['END'], pieces: ['ab', 'cE', 'N', 'Dx'], text: 'abc', stopped: true },
    { stops: ['END'], pieces: ['E', 'N', 'd'], text: 'ENd', stopped: false },
    { stops: ['END'], pieces: ['EN'], text: 'EN', stopped: false },
    { stops: ['\n\n', 'User:'], pieces: ['hi\n', 'Us', 'er:'], text: 'hi\n', stopped: true },
    { stops: ['abc', 'b'], pieces: ['xab', 'c'], text: 'xa', stopped: true },
    { stops: ['aab'], pieces: ['a', 'a', 'a', 'b'], text: 'a', stopped: true },
    { stops: ['停止'], pieces: ['日本', '停', '止です'], text: '日本', stopped: true },
  ])('$stops over $pieces', ({ stops, pieces, text, stopped }) => {
    const r = run(stops, pieces);
    expect(r.text).toBe(text);
    expect(r.stopped).toBe(stopped);
  });

  it('never emits the beginning of a stop string that may still complete', () => {
    const r = run(['<END>'], ['x<', 'E', 'N', 'D', '>']);
    expect(r.emitted).toEqual(['x', '', '', '', '']);
    expect(r.stopped).toBe(true);
  });

  it('emits nothing after stopping', () => {
    const m = new StopMatcher(['s']);
    expect(m.push('as')).toEqual({ text: 'a', stopped: true });
    expect(m.push('more')).toEqual({ text: '', stopped: true });
    expect(m.flush()).toBe('');
  });
});
