/**
 * Prefix-cache-aware ordering of the replicas that can serve a request. Chat traffic resends
 * its conversation on every turn; a host whose context sequence still holds that conversation
 * evaluates only the new part. Hosts advertise the prefixes they hold as chained block hashes
 * (src/common/prefixBlocks.ts: block i's hash covers blocks 1..i, so holding hash i means
 * holding the whole prefix up to it); a request carries its own chain. The policy:
 *
 * - A replica's reuse is the number of the request's leading blocks it holds.
 * - Replicas whose load (running + queued) is at most `maxLoadGap` above the least busy one's
 *   are "close"; among them, the one holding the longest prefix (at least `minBlocks`) goes
 *   first, then others by reuse. A markedly busier holder is not preferred: the prefix is
 *   worth less than a queue. A holder with a free sequence (load below its sequences) is
 *   close whatever the gap: it starts the request at once, and passing it over re-evaluates
 *   the history elsewhere and there takes a sequence that may hold another live conversation,
 *   whose next turn then misses and evicts a third (a chain of misses that one diverted turn
 *   set off on a fleet with as many conversations as sequences).
 * - With no reuse to go by, a session key (`x-session-id`, or the request's `user`) picks a
 *   close replica by rendezvous hashing, so a conversation's turns meet again and its prefix
 *   gets built where the next turn will look.
 * - Among close replicas otherwise, and among holders of equal reuse: the one with fewer live
 *   sequences (ones that served in the last minute) first, then least busy, then by host id.
 *   A new conversation, or one whose only match is a prefix every host holds (a shared system
 *   prompt), so goes where it evicts no live conversation: by load alone, an idle fleet puts
 *   new conversations on the first host by id and a burst spreads them unevenly, and a host
 *   given more conversations than sequences evicts them from each other on every turn while
 *   another host's sequences stay empty (SGLang's cache-aware router sends such requests to
 *   the worker with the smallest cache for the same reason).
 * - An opening turn (no history of its own) goes to the close replica with fewer live sequences
 *   first, the longest match only among equals: a host that holds the shared system prompt
 *   in all its sequences would take the new conversation into one of them and evict a live
 *   one, while a host with a free sequence evicts nothing (its session key, when it has one,
 *   still decides first).
 * - Replicas beyond the gap come last, least busy first, then by id.
 *
 * Pure: the same inputs give the same order, so a workflow replays its route step exactly.
 */

export interface PrefixPolicy {
  /** Off: least busy, then by id (what routing did before). */
  enabled: boolean;
  /** How much busier (running + queued) than the least busy replica a prefix holder may be and still go first. */
  maxLoadGap: number;
  /** Fewest leading blocks held for a replica to count as a holder. */
  minBlocks: number;
}

/** Defaults (FLEET_PREFIX_ROUTING, FLEET_PREFIX_MAX_LOAD_GAP, FLEET_PREFIX_MIN_BLOCKS). */
export const DEFAULT_PREFIX_POLICY: PrefixPolicy = { enabled: true, maxLoadGap: 2, minBlocks: 1 };

/** What a request brings: its chained block hashes (first block first) and an optional session key. */
export interface RequestPrefix {
  blocks: readonly string[];
  session?: string;
  /** The opening turn of a conversation (src/common/prefixBlocks.ts isOpeningTurn): it can match only what other conversations share. */
  opening?: boolean;
}

export interface ReplicaCandidate {
  id: string;
  /** running + queued, as last reported. */
  busy: number;
  /** The chained block hashes this replica holds for the build (any order). */
  held?: readonly string[];
  /** Its sequences that served within LIVE_SEQUENCE_MS, as last reported (absent: 0). */
  live?: number;
  /** How many requests it runs at once (context sequences; absent: unknown, so never "free"). */
  sequences?: number;
}

/** How recently a sequence must have served to count as live: its conversation is likely to come back. */
export const LIVE_SEQUENCE_MS = 60_000;

/** A sequence that last served at `lastUsedAt` (ms; 0: never) is live at `now`. */
export const isLiveSequence = (lastUsedAt: number, now: number) => lastUsedAt > now - LIVE_SEQUENCE_MS;

const liveOf = (c: ReplicaCandidate) => c.live ?? 0;

/**
 * The longest prefix of a chain something is known for: the last block `known` answers for
 * (chained hashes: knowing block i is knowing blocks 1..i), its 1-based length and the answer.
 */
export function lastKnownBlock<T>(blocks: readonly string[], known: (hash: string) => T | undefined): { length: number; hash: string; value: T } | undefined {
  for (let i = blocks.length; i > 0; i--) {
    const value = known(blocks[i - 1]!);
    if (value !== undefined) return { length: i, hash: blocks[i - 1]!, value };
  }
  return undefined;
}

/** How many of the request's leading blocks a replica holds. */
export function reusedBlocks(blocks: readonly string[], held: readonly string[] | undefined): number {
  if (!held || held.length === 0) return 0;
  const set = new Set(held);
  return lastKnownBlock(blocks, (h) => (set.has(h) ? true : undefined))?.length ?? 0;
}

const byId = (a: ReplicaCandidate, b: ReplicaCandidate) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const byLoadThenId = (a: ReplicaCandidate, b: ReplicaCandidate) => a.busy - b.busy || byId(a, b);
const byLiveThenLoadThenId = (a: ReplicaCandidate, b: ReplicaCandidate) => liveOf(a) - liveOf(b) || a.busy - b.busy || byId(a, b);

/** The candidates in the order they should be tried. */
export function rankReplicas(candidates: readonly ReplicaCandidate[], prefix: RequestPrefix | undefined, policy: PrefixPolicy): string[] {
  const base = [...candidates].sort(byLoadThenId);
  if (!policy.enabled || !prefix || base.length < 2) return base.map((c) => c.id);
  const least = base[0]!.busy;
  const near = base.filter((c) => c.busy - least <= policy.maxLoadGap).sort(byLiveThenLoadThenId);
  const far = base.filter((c) => !near.includes(c));
  const reuse = new Map(base.map((c) => [c.id, reusedBlocks(prefix.blocks, c.held)]));
  const holds = (c: ReplicaCandidate) => reuse.get(c.id)! >= policy.minBlocks;
  const hasFreeSequence = (c: ReplicaCandidate) => c.sequences !== undefined && c.busy < c.sequences;
  const holders = prefix.opening ? [] : [...near.filter(holds), ...far.filter((c) => holds(c) && hasFreeSequence(c))];
  if (holders.length > 0) {
    // Stable sort: equal reuse keeps close before free-sequence, fewer live, least busy, id.
    const first = [...holders].sort((a, b) => reuse.get(b.id)! - reuse.get(a.id)!);
    return [...first, ...near.filter((c) => !holders.includes(c)), ...far.filter((c) => !holders.includes(c))].map((c) => c.id);
  }
  if (prefix.session !== undefined) {
    const session = prefix.session;
    const pick = near.reduce((best, c) => (rendezvous(session, c.id) > rendezvous(session, best.id) ? c : best), near[0]!);
    return [pick, ...near.filter((c) => c !== pick), ...far].map((c) => c.id);
  }
  if (prefix.opening) {
    // Stable sort: equal matches keep fewer live, then least busy, then id.
    const matched = (c: ReplicaCandidate) => (reuse.get(c.id)! >= policy.minBlocks ? reuse.get(c.id)! : 0);
    return [...[...near].sort((a, b) => liveOf(a) - liveOf(b) || matched(b) - matched(a)), ...far].map((c) => c.id);
  }
  return [...near, ...far].map((c) => c.id);
}

/** A 32-bit FNV-1a score of (session, replica): the highest wins (rendezvous hashing). */
export function rendezvous(session: string, replica: string): number {
  let h = 0x811c9dc5;
  for (const ch of `${session}\u0000${replica}`) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A free context sequence, for the host's choice of where a request runs. */
export interface SequenceCandidate {
  /** Leading prompt tokens it already holds (evaluated by an earlier request). */
  kept: number;
  /** When it last served (ms; 0: never). */
  lastUsedAt: number;
  /** What it holds is an earlier turn of this request's own conversation (the request keeps the whole prompt it last evaluated). */
  continues?: boolean;
}

/**
 * The free sequence a request takes, so that a live conversation loses its KV only when nothing
 * else is free:
 * 1. one holding an earlier turn of this very conversation;
 * 2. else one that is not live (never used, or idle for LIVE_SEQUENCE_MS);
 * 3. else one holding another live conversation.
 * Within a tier: the one keeping most of the prompt, then the least recently used, then the
 * first. Keeping a shared prefix (a system prompt) never outweighs the tier: taking a live
 * conversation's sequence for its 49 or 1000 shared tokens costs that conversation its whole
 * history on its next turn.
 */
export function pickSequence(free: readonly SequenceCandidate[], now: number): number {
  const tier = (q: SequenceCandidate) => (q.continues ? 0 : isLiveSequence(q.lastUsedAt, now) ? 2 : 1);
  let best = 0;
  for (let i = 1; i < free.length; i++) {
    const a = free[i]!;
    const b = free[best]!;
    const d = tier(a) - tier(b) || b.kept - a.kept || a.lastUsedAt - b.lastUsedAt;
    if (d < 0) best = i;
  }
  return best;
}

/** A backend whose first-token time is this many times the best one's (and SLOW_MIN_MS more) is passed over. */
export const SLOW_FACTOR = 2;
export const SLOW_MIN_MS = 100;
/** Weight of the newest sample in a backend's first-token moving average. */
export const TTFT_ALPHA = 0.3;

export const ewma = (prev: number | undefined, sample: number, alpha = TTFT_ALPHA) => (prev === undefined ? sample : prev + alpha * (sample - prev));

/**
 * Which backend index of an attested provider (its `-i<N>` rotation hosts) a request tries
 * first: the one that served its conversation's earlier turns (`held`), else its session's
 * (rendezvous), else the next in rotation — unless that one's first-token average is far
 * behind the fastest's, then the next one in rotation that is not.
 */
export function chooseBackend(o: { count: number; next: number; held?: number; session?: string; ttftMs: ReadonlyArray<number | undefined> }): number {
  if (o.count <= 1) return 0;
  let preferred = o.held !== undefined && o.held < o.count ? o.held : o.next % o.count;
  if (o.held === undefined && o.session !== undefined) {
    const session = o.session;
    preferred = 0;
    for (let i = 1; i < o.count; i++) if (rendezvous(session, String(i)) > rendezvous(session, String(preferred))) preferred = i;
  }
  const known = o.ttftMs.slice(0, o.count).filter((t): t is number => t !== undefined);
  const best = known.length > 0 ? Math.min(...known) : undefined;
  const slow = (i: number) => {
    const t = o.ttftMs[i];
    return t !== undefined && best !== undefined && t > best * SLOW_FACTOR && t - best > SLOW_MIN_MS;
  };
  if (!slow(preferred)) return preferred;
  for (let k = 0; k < o.count; k++) {
    const i = (o.next + k) % o.count;
    if (i !== preferred && !slow(i)) return i;
  }
  return preferred;
}
