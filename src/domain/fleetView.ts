/**
 * The snapshot of fleet state a routing decision is made from. Plain JSON: a workflow reads it
 * through a local activity (so it is recorded in history) and hands it to the pure policies.
 */
import type { AliasView, PoolsView } from './pools.js';

export type PlacementStateName = 'unloaded' | 'loading' | 'loaded' | 'unloading' | 'failed';

export interface PlacementView {
  modelId: string;
  state: PlacementStateName;
  lastUsedAt: string | null;
}

export interface ModelLoad {
  running: number;
  queued: number;
  /** ISO time the model last served a request on the host (fresher than the placement's). */
  lastUsedAt?: string | null;
  /** Chained block hashes of the prefixes the host's sequences hold (src/domain/prefixRouting.ts). */
  prefixes?: string[];
  /** Sequences that served in the last minute (src/domain/prefixRouting.ts: new conversations go where fewer are live). */
  liveSequences?: number;
}

export interface HostCapacity {
  /** Models the host keeps loaded at once. */
  maxModelSlots: number;
  gpuCount: number;
  /** Memory models load into (VRAM on a GPU host, RAM otherwise), total and free now. */
  totalMemoryBytes: number;
  freeMemoryBytes: number;
  /** Admission limits per model (unknown: never considered full). */
  maxInFlight?: number;
  maxQueue?: number;
}

export interface HostView {
  id: string;
  status: 'up' | 'down';
  /** ISO timestamp of the last heartbeat the host wrote. */
  lastHeartbeatAt: string;
  placements: PlacementView[];
  /** Per-model load from the host's last heartbeat. */
  load: Record<string, ModelLoad>;
  capacity: HostCapacity;
  /** GGUF files present on the host (absolute paths). */
  files: string[];
  /** Fingerprint of the host's current identity key, as its last heartbeat reported it. */
  keyFingerprint?: string;
  /** A request found the host gone since its last heartbeat (see health.ts); absent: not suspect. */
  suspect?: true;
}

export interface CatalogModelView {
  id: string;
  path: string;
  sha256: string;
  contextLength: number;
  sizeBytes: number;
  /** Only hosts whose current key is pinned may serve (or cold-load) a verifiable model. */
  verifiable?: boolean;
  /** The model's pin set (key fingerprints); read only when `verifiable`. */
  pinnedFingerprints?: string[];
  /** Set while the build is quarantined (a load failed for its own sake); absent otherwise. */
  quarantined?: { reason: string };
}

export interface FleetView {
  /** The requested alias's desired build (or the build itself when addressed directly). */
  model: CatalogModelView | null;
  /** The build the alias rolls from, served when no replica of the desired build can. */
  previous?: CatalogModelView;
  /** The requested alias; absent when a build is addressed directly (cold loads). */
  alias?: AliasView;
  /** Pool assignments and the kill switch; absent in views recorded before pools existed. */
  pools?: PoolsView;
  hosts: HostView[];
  /** Heartbeat period hosts were configured with, for the health rule. */
  heartbeatIntervalMs: number;
}
