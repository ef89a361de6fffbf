/**
 * Pin-update policy: after each attestation cycle for a model, which host key fingerprints are
 * pinned (trusted to serve it verifiably). Pure and deterministic — no clock, no randomness,
 * no Node built-ins — so a workflow replays the same decision from the same inputs.
 *
 * - Complete coverage (the count is known and within the fan-out cap, no call failed, no report
 *   failed verification, and the DISTINCT verified fingerprints number exactly the backend
 *   count) REPLACES the set: a host that left or rotated its key is evicted within one cycle.
 * - Anything less MERGES additively: newly verified fingerprints are added, nothing is evicted,
 *   because a host we could not reach (or two hosts sharing a key) proves nothing about who left.
 * - Count unknown → no change, reason `count_fetch: …`; count 0 → no calls, no change, reason
 *   `count_zero`; count above the cap → only `cap` hosts are attested, reason `fanout_capped`,
 *   which can never be complete coverage.
 * - A verify failure blocks replacement: the set is `blocked` until a complete cycle recovers it.
 */

/** Hosts attested per cycle at most. */
export const MAX_ATTESTATION_FANOUT = 256;

export const PinSetState = {
  /** No cycle has pinned anything yet; the first successful cycle pins. */
  bootstrap: 'bootstrap',
  /** Pins from a successful cycle; the steady state. */
  pinned: 'pinned',
  /** A host failed verification; replacement is refused until a complete cycle. */
  blocked: 'blocked',
  /** No fingerprints and not bootstrapping (e.g. cleared by an operator); merges of nothing keep it. */
  empty: 'empty',
} as const;
export type PinSetState = (typeof PinSetState)[keyof typeof PinSetState];

export interface PinSet {
  state: PinSetState;
  /** Sorted, distinct. */
  fingerprints: string[];
}

/** The number of backends serving the model, as the control plane counted them this cycle. */
export type BackendCount = { ok: true; count: number } | { ok: false; error: string };

/** One host's attestation call. */
export type HostAttestation =
  | { hostId: string; ok: true; fingerprint: string; verified: true }
  | { hostId: string; ok: true; fingerprint: string; verified: false; reason: string }
  | { hostId: string; ok: false; error: string };

export interface PinCycle {
  count: BackendCount;
  results: readonly HostAttestation[];
  /** @default MAX_ATTESTATION_FANOUT */
  fanOutCap?: number;
}

export type PinUpdateMode = 'replaced' | 'merged' | 'unchanged';

export interface PinUpdateOutcome {
  /** null when the count could not be fetched. */
  backendCount: number | null;
  /** Distinct verified fingerprints this cycle, sorted. */
  observed: string[];
  /** In the next set, not in the current one (sorted). */
  newlyPinned: string[];
  /** In the current set, not in the next one (sorted). */
  evicted: string[];
  /** The rule that applied; `unchanged` when no attestation could run. */
  mode: PinUpdateMode;
  /** Why the cycle was not complete coverage (empty when it was). */
  reasons: string[];
  /** `from → to`; a pinned set that stays pinned reports how: grown, shrunk, rotated, steady. */
  transition: string;
}

export interface PinUpdate {
  next: PinSet;
  outcome: PinUpdateOutcome;
}

export type FanOutPlan = { attest: number; reasons: string[] };

const sortedDistinct = (xs: Iterable<string>): string[] => [...new Set(xs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

function validCount(count: BackendCount): { ok: true; count: number } | { ok: false; reason: string } {
  if (!count.ok) return { ok: false, reason: `count_fetch: ${count.error}` };
  if (!Number.isInteger(count.count) || count.count < 0) return { ok: false, reason: `count_fetch: invalid count ${count.count}` };
  return count;
}

/** How many hosts to attest this cycle: 0 when the count is unknown or zero, at most `cap`. */
export function planFanOut(count: BackendCount, cap: number = MAX_ATTESTATION_FANOUT): FanOutPlan {
  if (!(Number.isInteger(cap) && cap >= 1)) throw new RangeError(`fanOutCap must be an integer ≥ 1, got ${cap}`);
  const c = validCount(count);
  if (!c.ok) return { attest: 0, reasons: [c.reason] };
  if (c.count === 0) return { attest: 0, reasons: ['count_zero'] };
  if (c.count > cap) return { attest: cap, reasons: ['fanout_capped'] };
  return { attest: c.count, reasons: [] };
}

/**
 * Which hosts a cycle attests: all of them up to the cap; past it, a window of `cap` hosts
 * (of the sorted ids) that moves by `cap` each cycle (`rotation`: the cycle's index), so every
 * host is attested at least once every ceil(n / cap) cycles and none stays unattested. A
 * capped cycle merges (never replaces), so the pins of hosts outside the window stay.
 */
export function attestationTargets(hostIds: readonly string[], o: { attest: number; rotation: number }): string[] {
  const n = hostIds.length;
  if (o.attest >= n) return [...hostIds];
  const start = ((Math.trunc(o.rotation) * o.attest) % n + n) % n;
  return Array.from({ length: o.attest }, (_, i) => hostIds[(start + i) % n]!);
}

/** How a pinned set changed when it stays pinned. */
function changeKind(newlyPinned: number, evicted: number): string {
  if (newlyPinned > 0 && evicted > 0) return 'rotated';
  if (newlyPinned > 0) return 'grown';
  if (evicted > 0) return 'shrunk';
  return 'steady';
}

function describeTransition(from: PinSetState, to: PinSetState, newlyPinned: number, evicted: number): string {
  if (from === 'pinned' && to === 'pinned') return `pinned → ${changeKind(newlyPinned, evicted)}`;
  return `${from} → ${to}`;
}

function unchanged(current: PinSet, backendCount: number | null, reasons: string[]): PinUpdate {
  return {
    next: { state: current.state, fingerprints: sortedDistinct(current.fingerprints) },
    outcome: {
      backendCount,
      observed: [],
      newlyPinned: [],
      evicted: [],
      mode: 'unchanged',
      reasons,
      transition: describeTransition(current.state, current.state, 0, 0),
    },
  };
}

/** Apply one attestation cycle to a model's pin set. */
export function applyPinUpdate(current: PinSet, cycle: PinCycle): PinUpdate {
  const cap = cycle.fanOutCap ?? MAX_ATTESTATION_FANOUT;
  const plan = planFanOut(cycle.count, cap);
  const count = validCount(cycle.count);
  if (!count.ok) return unchanged(current, null, plan.reasons);
  if (count.count === 0) return unchanged(current, 0, plan.reasons);

  const reasons = [...plan.reasons];
  const results = [...cycle.results].sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0));
  const hostsByFingerprint = new Map<string, string[]>();
  let callFailures = 0;
  let verifyFailures = 0;
  for (const r of results) {
    if (!r.ok) {
      callFailures++;
      reasons.push(`call_failed: ${r.hostId}: ${r.error}`);
    } else if (!r.verified) {
      verifyFailures++;
      reasons.push(`verify_failed: ${r.hostId}: ${r.reason}`);
    } else {
      hostsByFingerprint.set(r.fingerprint, [...(hostsByFingerprint.get(r.fingerprint) ?? []), r.hostId]);
    }
  }
  const observed = sortedDistinct(hostsByFingerprint.keys());
  let duplicates = 0;
  for (const fp of observed) {
    const hosts = hostsByFingerprint.get(fp) ?? [];
    if (hosts.length > 1) {
      duplicates++; // one key on two hosts: a copied identity, and one fewer distinct host than counted
      reasons.push(`duplicate_fingerprint: ${hosts.join(', ')}`);
    }
  }
  if (observed.length !== count.count) reasons.push(`coverage: ${observed.length} distinct of ${count.count}`);

  const capped = count.count > cap;
  const complete = !capped && callFailures === 0 && verifyFailures === 0 && duplicates === 0 && observed.length === count.count;
  const before = sortedDistinct(current.fingerprints);
  const fingerprints = complete ? observed : sortedDistinct([...before, ...observed]);
  const had = new Set(before);
  const has = new Set(fingerprints);
  const newlyPinned = fingerprints.filter((fp) => !had.has(fp));
  const evicted = before.filter((fp) => !has.has(fp));

  let state: PinSetState;
  if (verifyFailures > 0) state = 'blocked';
  else if (complete) state = 'pinned';
  else if (current.state === 'blocked') state = 'blocked'; // only a complete cycle recovers
  else if (fingerprints.length > 0) state = 'pinned';
  else state = current.state; // nothing verified: bootstrap keeps waiting, empty stays empty

  return {
    next: { state, fingerprints },
    outcome: {
      backendCount: count.count,
      observed,
      newlyPinned,
      evicted,
      mode: complete ? 'replaced' : 'merged',
      reasons,
      transition: describeTransition(current.state, state, newlyPinned.length, evicted.length),
    },
  };
}
