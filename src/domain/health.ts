/**
 * Host health: a host is unhealthy only after MISSED_HEARTBEATS_LIMIT heartbeats in a row did
 * not arrive, so one slow write (or a long GC pause) never takes a busy host out of routing.
 * One heartbeat that arrives resets it. A host that deregistered (`down`) is unhealthy at once,
 * and so is a suspect one: a request's `generate` there was never picked up (or its heartbeat
 * stopped), which says the host is gone long before three heartbeats are missed; its next
 * heartbeat clears the mark.
 */
import type { HostView } from './fleetView.js';

export const MISSED_HEARTBEATS_LIMIT = 3;

export function missedHeartbeats(lastHeartbeatAt: string, now: number, intervalMs: number): number {
  const age = now - Date.parse(lastHeartbeatAt);
  if (!Number.isFinite(age) || intervalMs <= 0) return Number.POSITIVE_INFINITY;
  // Each full interval since the last write is one heartbeat that should have arrived and did not.
  return Math.max(0, Math.floor(age / intervalMs));
}

export function isHostHealthy(host: Pick<HostView, 'status' | 'lastHeartbeatAt' | 'suspect'>, now: number, intervalMs: number): boolean {
  if (host.status !== 'up' || host.suspect === true) return false;
  return missedHeartbeats(host.lastHeartbeatAt, now, intervalMs) < MISSED_HEARTBEATS_LIMIT;
}
