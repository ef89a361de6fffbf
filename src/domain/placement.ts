/**
 * Placement policy: which host loads a model no host holds, and which of its models make room.
 * A host keeps at most `maxModelSlots` models; loading another evicts its least recently used
 * idle models (never one with requests running or queued). A host that could never hold the
 * model (not enough memory or GPUs in total) is not a candidate; if no registered host could,
 * the model can never be served here (404), which is different from "no room right now" (503).
 */
import type { CatalogModelView, HostView } from './fleetView.js';

/** Headroom over the file size for the KV cache and scratch buffers. */
export const MEMORY_HEADROOM = 1.2;

export function memoryNeeded(model: Pick<CatalogModelView, 'sizeBytes'>): number {
  return Math.ceil(model.sizeBytes * MEMORY_HEADROOM);
}

/** Capability, not current state: could this host ever hold the model? Unknown totals pass. */
export function canEverHost(host: HostView, model: CatalogModelView): boolean {
  const total = host.capacity.totalMemoryBytes;
  return total === 0 || total >= memoryNeeded(model);
}

export interface LoadPlan {
  hostId: string;
  /** Models to unload first, least recently used first. */
  evict: string[];
}

const isActive = (state: string) => state === 'loaded' || state === 'loading';

function lastUsed(host: HostView, modelId: string): string {
  const fromHost = host.load[modelId]?.lastUsedAt;
  const fromPlacement = host.placements.find((p) => p.modelId === modelId)?.lastUsedAt;
  return fromHost ?? fromPlacement ?? ''; // never used sorts first
}

/** Room for `modelId` on `host`: evict nothing, evict LRU idle models, or null (no room now). */
export function planLoadOnHost(host: HostView, modelId: string): LoadPlan | null {
  const others = host.placements.filter((p) => p.modelId !== modelId && isActive(p.state));
  const excess = others.length - host.capacity.maxModelSlots + 1;
  if (excess <= 0) return { hostId: host.id, evict: [] };
  const idle = others
    .filter((p) => p.state === 'loaded')
    .filter((p) => {
      const l = host.load[p.modelId];
      return !l || l.running + l.queued === 0;
    })
    .map((p) => p.modelId)
    .sort((a, b) => lastUsed(host, a).localeCompare(lastUsed(host, b)) || a.localeCompare(b));
  if (idle.length < excess) return null;
  return { hostId: host.id, evict: idle.slice(0, excess) };
}

export type PlacementDecision =
  | { kind: 'load'; plan: LoadPlan }
  /** Capable hosts exist but none has a free or evictable slot right now. */
  | { kind: 'noRoom' }
  /** No registered host could ever hold the model. */
  | { kind: 'never' };

/**
 * Picks the host to load on among `healthy` hosts. Preference: has the file, needs no
 * eviction, more free slots, more free memory, then host name (deterministic).
 */
export function chooseLoadTarget(model: CatalogModelView, registered: HostView[], healthy: HostView[]): PlacementDecision {
  if (!registered.some((h) => canEverHost(h, model))) return { kind: 'never' };
  const scored = healthy
    .filter((h) => canEverHost(h, model))
    .map((h) => ({ h, plan: planLoadOnHost(h, model.id) }))
    .filter((x): x is { h: HostView; plan: LoadPlan } => x.plan !== null)
    .map(({ h, plan }) => ({
      plan,
      hasFile: h.files.includes(model.path) ? 0 : 1,
      evictions: plan.evict.length,
      freeSlots: -(h.capacity.maxModelSlots - h.placements.filter((p) => isActive(p.state)).length),
      freeMemory: -h.capacity.freeMemoryBytes,
      id: h.id,
    }))
    .sort(
      (a, b) =>
        a.hasFile - b.hasFile ||
        a.evictions - b.evictions ||
        a.freeSlots - b.freeSlots ||
        a.freeMemory - b.freeMemory ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
  const best = scored[0];
  return best ? { kind: 'load', plan: best.plan } : { kind: 'noRoom' };
}
