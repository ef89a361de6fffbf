/**
 * A fixed set of context sequences (one per concurrent generation) handed out in FIFO order.
 * A request that finds none free waits in a bounded queue; a caller that gives up (abort)
 * leaves the queue at once, so nothing waits on a slot nobody will use.
 */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

interface Waiter<T> {
  resolve: (item: T) => void;
  reject: (err: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class SequencePool<T> {
  private readonly free: T[];
  private readonly waiters: Waiter<T>[] = [];
  private running = 0;

  constructor(
    items: T[],
    private readonly maxQueue: number,
  ) {
    this.free = [...items];
  }

  get stats(): { running: number; queued: number; capacity: number } {
    return { running: this.running, queued: this.waiters.length, capacity: this.free.length + this.running };
  }

  async acquire(signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const item = this.free.shift();
    if (item !== undefined) {
      this.running++;
      return item;
    }
    if (this.waiters.length >= this.maxQueue) throw new QueueFullError('queue full');
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = { resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
    });
  }

  release(item: T): void {
    const next = this.waiters.shift();
    if (next) {
      if (next.onAbort) next.signal?.removeEventListener('abort', next.onAbort);
      next.resolve(item); // the slot passes straight to the next waiter; running is unchanged
      return;
    }
    this.running--;
    this.free.push(item);
  }

  /** Fails every waiter (the model is being unloaded). */
  rejectAll(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}
