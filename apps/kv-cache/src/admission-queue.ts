// A first-come-first-served wait line for admissions that found the KV cache full (issue 7 §5:
// "a bounded wait in a queue, then 429"). Requests are admitted strictly in arrival order: while
// anyone waits, a newcomer joins the back rather than slipping into room freed for the head, so
// a large request is not starved by a stream of small ones (vLLM's scheduler is FCFS too). Each
// waiter has its own deadline; when it passes, the waiter leaves the line with the last verdict
// it got (the numbers of the stage that was full), and the gateway answers 429.
//
// The line knows nothing of KV: `drain(attempt)` offers the head to `attempt`, which admits it
// (returns a final answer) or says it still does not fit (returns undefined). The service calls
// drain whenever room may have appeared (a release, a shard's freed event, an expiry, each tick).

export interface Waiting<Q, A> {
  readonly request: Q;
  readonly key: string;
  /** The verdict to answer with if the wait runs out (updated by each failed attempt). */
  fallback: A;
  readonly deadline: number;
}

interface Entry<Q, A> extends Waiting<Q, A> {
  resolve(answer: A): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  /** Its wait ran out (or it was cancelled) while an attempt to admit it was in flight. */
  expired?: { answer?: A };
}

export class AdmissionQueue<Q, A> {
  private readonly line: Entry<Q, A>[] = [];
  /** The waiter being offered to `attempt` now: its timeout waits for the attempt's outcome. */
  private inFlight: Entry<Q, A> | undefined;
  private draining: Promise<void> | undefined;
  private again = false;

  /** The waiter at the head of the line, if any. */
  peek(): Waiting<Q, A> | undefined {
    return this.line[0];
  }

  /** How many requests wait now. */
  get length(): number {
    return this.line.length;
  }

  /**
   * Joins the back of the line; resolves with the attempt's answer once admitted, or with
   * `fallback` (as last updated) after `waitMs`; rejects if an attempt to admit it throws.
   */
  wait(key: string, request: Q, fallback: A, waitMs: number, now = Date.now()): Promise<A> {
    return new Promise<A>((resolve, reject) => {
      const entry: Entry<Q, A> = {
        key,
        request,
        fallback,
        deadline: now + waitMs,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(entry), waitMs),
      };
      this.line.push(entry);
    });
  }

  /** Takes a waiter out of the line (e.g. a retry of the same request), answering it with `answer`. */
  cancel(key: string, answer: (waiting: Waiting<Q, A>) => A): number {
    let cancelled = 0;
    for (const entry of [...this.line]) {
      if (entry.key !== key) continue;
      this.expire(entry, answer(entry));
      cancelled++;
    }
    return cancelled;
  }

  /** Answers every waiter at once (service shutting down, plan withdrawn). */
  clear(answer: (waiting: Waiting<Q, A>) => A): void {
    for (const entry of [...this.line]) this.expire(entry, answer(entry));
  }

  /**
   * Offers waiters to `attempt` from the head, in order, until one does not fit yet. `attempt`
   * returns the final answer, or `{ retry: fallback }` to keep the waiter (and stop the pass); if
   * it throws, that waiter leaves with the error. Passes never overlap: a drain asked for during
   * one runs again when it ends.
   */
  drain(attempt: (waiting: Waiting<Q, A>) => Promise<A | { retry: A }>): Promise<void> {
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    this.draining = (async () => {
      do {
        this.again = false;
        while (this.line.length > 0) {
          const head = this.line[0]!;
          let outcome: A | { retry: A };
          this.inFlight = head;
          try {
            outcome = await attempt(head);
          } catch (error) {
            this.leave(head, error as Error);
            continue;
          } finally {
            this.inFlight = undefined;
          }
          if (isRetry(outcome)) {
            head.fallback = outcome.retry;
            // Its time ran out during the attempt: it leaves now, with the latest numbers.
            if (head.expired) this.leave(head, head.expired.answer ?? head.fallback);
            if (this.line[0] === head) break;
            continue;
          }
          // Admitted (or refused): the answer stands even if its time ran out meanwhile, since the
          // admission already holds blocks; the caller's RPC timeout leaves room for this.
          this.leave(head, outcome);
        }
      } while (this.again && this.line.length > 0);
    })().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  /** Ends a wait now, or — for the waiter in flight — once its attempt says it does not fit. */
  private expire(entry: Entry<Q, A>, answer?: A): void {
    if (entry === this.inFlight) entry.expired = answer === undefined ? {} : { answer };
    else this.leave(entry, answer ?? entry.fallback);
  }

  private leave(entry: Entry<Q, A>, answer: A | Error): void {
    const at = this.line.indexOf(entry);
    if (at < 0) return;
    this.line.splice(at, 1);
    clearTimeout(entry.timer);
    if (answer instanceof Error) entry.reject(answer);
    else entry.resolve(answer);
  }
}

function isRetry<A>(outcome: A | { retry: A }): outcome is { retry: A } {
  return typeof outcome === 'object' && outcome !== null && 'retry' in outcome;
}
