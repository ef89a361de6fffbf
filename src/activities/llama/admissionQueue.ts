/**
 * The slots of one loaded model (its context sequences) behind admission control: the
 * decisions come from `src/domain/admission.ts`; this class holds the counters, the waiters
 * and their timers. A waiter that gives up (abort, max wait) leaves at once, so nothing
 * waits on a slot nobody will use, and a freed slot passes straight to the fairest waiter.
 */
import {
  decideAdmission,
  pickNextWaiter,
  principalKey,
  type AdmissionLimits,
  type RejectReason,
  retryAfterSeconds,
} from '../../domain/admission.js';

export class AdmissionRejected extends Error {
  override name = 'AdmissionRejected';
  constructor(
    readonly reason: RejectReason,
    readonly retryAfterSeconds: number,
  ) {
    super(`admission refused: ${reason}`);
  }
}

export interface Lease<T> {
  item: T;
  release(): void;
}

interface Waiter<T> {
  principal: string | null;
  seq: number;
  resolve: (lease: Lease<T>) => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

/** Weight of the newest sample in the service-time moving average. */
const EWMA_ALPHA = 0.2;

export class AdmissionQueue<T> {
  private readonly free: T[];
  private readonly waiters: Waiter<T>[] = [];
  private readonly running = new Map<string, number>();
  private readonly perPrincipal = new Map<string, number>();
  /** Grant counter per principal key, for round-robin among principals. */
  private readonly lastServed = new Map<string, number>();
  private grants = 0;
  private runningCount = 0;
  private seq = 0;
  private avgServiceMs = 0;

  constructor(
    items: T[],
    private readonly limits: AdmissionLimits,
    private readonly onChange: () => void = () => undefined,
  ) {
    this.free = [...items];
  }

  get stats(): { running: number; queued: number; capacity: number; avgServiceMs: number } {
    return { running: this.runningCount, queued: this.waiters.length, capacity: this.limits.maxInFlight, avgServiceMs: this.avgServiceMs };
  }

  /** Seconds a refused caller should wait before retrying here. */
  retryAfter(): number {
    return retryAfterSeconds(this.waiters.length, this.limits.maxInFlight, this.avgServiceMs);
  }

  /**
   * `choose` picks which free slot a request admitted at once takes (its index; default the
   * first); a waiter takes the slot that frees up.
   */
  acquire(principal: string | null, signal?: AbortSignal, choose?: (free: readonly T[]) => number): Promise<Lease<T>> {
    signal?.throwIfAborted();
    const decision = decideAdmission(
      {
        running: this.runningCount,
        queued: this.waiters.length,
        byPrincipal: Object.fromEntries(this.perPrincipal),
        avgServiceMs: this.avgServiceMs,
      },
      this.limits,
      principal,
    );
    if (decision.kind === 'reject') return Promise.reject(new AdmissionRejected(decision.reason, decision.retryAfterSeconds));
    this.bump(this.perPrincipal, principal, +1);
    if (decision.kind === 'run') {
      const at = choose?.(this.free) ?? 0;
      const [item] = this.free.splice(at >= 0 && at < this.free.length ? at : 0, 1);
      const lease = this.lease(item!, principal);
      this.onChange();
      return Promise.resolve(lease);
    }
    return new Promise<Lease<T>>((resolve, reject) => {
      const waiter: Waiter<T> = { principal, seq: this.seq++, resolve, reject, cleanup: () => undefined };
      const leave = (err: unknown) => {
        const i = this.waiters.indexOf(waiter);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        this.bump(this.perPrincipal, principal, -1);
        waiter.cleanup();
        this.onChange();
        reject(err);
      };
      const timer = setTimeout(() => leave(new AdmissionRejected('wait_elapsed', this.retryAfter())), this.limits.maxWaitMs);
      const onAbort = () => leave(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      waiter.cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      this.waiters.push(waiter);
      this.onChange();
    });
  }

  /** Fails every waiter (the model is being unloaded). */
  rejectAll(err: Error): void {
    for (const w of this.waiters.splice(0)) {
      w.cleanup();
      this.bump(this.perPrincipal, w.principal, -1);
      w.reject(err);
    }
    this.onChange();
  }

  private lease(item: T, principal: string | null): Lease<T> {
    this.lastServed.set(principalKey(principal), ++this.grants);
    this.runningCount++;
    this.bump(this.running, principal, +1);
    const started = Date.now();
    let released = false;
    return {
      item,
      release: () => {
        if (released) return;
        released = true;
        const held = Date.now() - started;
        this.avgServiceMs = this.avgServiceMs === 0 ? held : this.avgServiceMs + EWMA_ALPHA * (held - this.avgServiceMs);
        this.runningCount--;
        this.bump(this.running, principal, -1);
        this.bump(this.perPrincipal, principal, -1);
        this.handOff(item);
        this.onChange();
      },
    };
  }

  private handOff(item: T): void {
    const i = pickNextWaiter(this.waiters, Object.fromEntries(this.running), Object.fromEntries(this.lastServed));
    if (i < 0) {
      this.free.push(item);
      return;
    }
    const [next] = this.waiters.splice(i, 1);
    next!.cleanup();
    next!.resolve(this.lease(item, next!.principal));
  }

  private bump(map: Map<string, number>, principal: string | null, by: number): void {
    if (map === this.perPrincipal && principal === null) return; // anonymous is exempt from the cap
    const key = principalKey(principal);
    const n = (map.get(key) ?? 0) + by;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
  }
}
