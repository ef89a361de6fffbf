/**
 * What an API process knows about its own traffic before the hosts report it, laid over the
 * hosts' last reports for one decision: requests it sent to a host and not yet settled (a burst
 * arrives faster than any heartbeat), and the conversation a host of ours just answered (the
 * next turn arrives before that host's heartbeat is read). Pure: the reports are never changed.
 */
import type { HostView } from './fleetView.js';

export interface LocalFacts {
  /** Requests in flight by host id, then build. */
  inFlight?: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** A host answered a conversation ending in block `hash` of `build`. */
  answered?: { hostId: string; build: string; hash: string };
}

/**
 * The hosts as routing should see them: a host's load is at least what is in flight there
 * (counted as queued), and the answering host holds the answered block.
 */
export function withLocalFacts(hosts: readonly HostView[], facts: LocalFacts): HostView[] {
  return hosts.map((h) => {
    let load = h.load;
    for (const [build, n] of facts.inFlight?.get(h.id) ?? []) {
      const l = load[build] ?? { running: 0, queued: 0 };
      if (l.running + l.queued < n) load = { ...load, [build]: { ...l, queued: n - l.running } };
    }
    const a = facts.answered;
    if (a && a.hostId === h.id) {
      const l = load[a.build] ?? { running: 0, queued: 0 };
      if (!l.prefixes?.includes(a.hash)) load = { ...load, [a.build]: { ...l, prefixes: [...(l.prefixes ?? []), a.hash] } };
    }
    return load === h.load ? h : { ...h, load };
  });
}
