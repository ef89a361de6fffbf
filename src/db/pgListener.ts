/**
 * LISTEN on a real PostgreSQL server for one process: ONE dedicated `pg.Client` (never a pool
 * connection — a pooled client is handed to other queries and its LISTENs would leak or vanish)
 * shared by every listener, opened lazily on the first subscribe. When the connection drops it
 * reconnects with capped exponential backoff and re-LISTENs every channel that still has
 * handlers. Notifications sent while it is down are lost — NOTIFY has no replay — which is why
 * the stream channel treats them as a fast path and the workflow result as the record.
 */
import pg from 'pg';
import type { Logger } from '../logger.js';

type Handler = (payload: string) => void;

interface ChannelState {
  handlers: Set<Handler>;
  /** Settles when the LISTEN for this channel has been acknowledged. */
  ready: Promise<void>;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 10_000;
/** Lets operators (and the tests) find the listener backend in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'fleet-listener';

export class PgListener {
  readonly #connectionString: string;
  readonly #log: Logger;
  readonly #channels = new Map<string, ChannelState>();
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed = false;
  /** LISTEN/UNLISTEN run one at a time: pg deprecates overlapping queries on one client. */
  #commands: Promise<unknown> = Promise.resolve();

  constructor(connectionString: string, log: Logger) {
    this.#connectionString = connectionString;
    this.#log = log;
  }

  /** Registers a handler; resolves once the server is LISTENing. Returns the unsubscribe. */
  async subscribe(channel: string, handler: Handler): Promise<() => Promise<void>> {
    if (this.#closed) throw new Error('the database handle is closed');
    let state = this.#channels.get(channel);
    if (!state) {
      // LISTEN is idempotent, so racing a reconnect that already re-LISTENed is harmless.
      const ready = this.#ensureConnected().then((client) => this.#command(client, `LISTEN ${quoteIdent(channel)}`));
      state = { handlers: new Set(), ready };
      this.#channels.set(channel, state);
    }
    // A fresh function per subscription, so the same callback can subscribe twice.
    const entry: Handler = (payload) => handler(payload);
    state.handlers.add(entry);
    try {
      // Every subscriber waits for the LISTEN, not only the first, so none resolves early.
      await state.ready;
    } catch (err) {
      if (this.#channels.get(channel) === state) this.#channels.delete(channel);
      throw new Error(`cannot LISTEN on "${channel}": ${errorMessage(err)}`, { cause: err });
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      if (!this.#remove(channel, state, entry)) return;
      const client = this.#client;
      if (!client) return; // reconnecting: the channel is simply not re-LISTENed
      try {
        // Queued synchronously, so a later re-subscribe's LISTEN runs after it.
        await this.#command(client, `UNLISTEN ${quoteIdent(channel)}`);
      } catch (err) {
        this.#log.debug({ err: errorMessage(err), channel }, 'UNLISTEN failed; the connection is going away');
      }
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#channels.clear();
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  /** Removes one handler; returns true when that emptied (and dropped) the channel. */
  #remove(channel: string, state: ChannelState, entry: Handler): boolean {
    if (!state.handlers.delete(entry) || state.handlers.size > 0) return false;
    if (this.#channels.get(channel) !== state) return false;
    this.#channels.delete(channel);
    return true;
  }

  #command(client: pg.Client, text: string): Promise<void> {
    const run = this.#commands.then(async () => {
      await client.query(text);
    });
    this.#commands = run.catch(() => undefined);
    return run;
  }

  #ensureConnected(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.#connectionString,
      application_name: LISTENER_APPLICATION_NAME,
      keepAlive: true,
    });
    client.on('notification', (msg) => this.#dispatch(msg.channel, msg.payload ?? ''));
    // Without an 'error' listener a dropped socket would crash the process.
    client.on('error', (err) => this.#onLost(client, err));
    client.on('end', () => this.#onLost(client));
    try {
      await client.connect();
      for (const channel of this.#channels.keys()) await client.query(`LISTEN ${quoteIdent(channel)}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      throw new Error('the database handle is closed');
    }
    this.#client = client;
    return client;
  }

  #dispatch(channel: string, payload: string): void {
    const state = this.#channels.get(channel);
    if (!state) return;
    for (const handler of [...state.handlers]) {
      try {
        handler(payload);
      } catch (err) {
        this.#log.error({ err: errorMessage(err), channel }, 'a notification handler threw');
      }
    }
  }

  #onLost(client: pg.Client, err?: Error): void {
    // Only the live client matters: a failed connect attempt is handled by its caller.
    if (this.#closed || client !== this.#client) return;
    this.#client = undefined;
    client.end().catch(() => undefined);
    this.#log.warn({ err: err ? errorMessage(err) : 'connection ended' }, 'LISTEN connection lost; reconnecting');
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer) return;
    if (this.#channels.size === 0) return; // nothing to restore; the next subscribe reconnects
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.#attempt += 1;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#ensureConnected().then(
        () => {
          this.#log.info({ attempts: this.#attempt, channels: this.#channels.size }, 'LISTEN connection restored');
          this.#attempt = 0;
        },
        (e: unknown) => {
          this.#log.warn({ err: errorMessage(e), attempt: this.#attempt }, 'LISTEN reconnect failed');
          this.#scheduleReconnect();
        },
      );
    }, delay);
    // A pending reconnect must not keep an otherwise finished process alive.
    this.#reconnectTimer.unref();
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
