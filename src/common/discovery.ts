/**
 * What a discovery cycle takes and returns, shared by the workflow, its starters (API,
 * Schedule, CLI) and the activities. Sandbox-safe: types and pure helpers only.
 */
import type { PinSet, PinUpdateOutcome } from '../domain/pinSet.js';

export interface DiscoveryInput {
  modelId: string;
}

/** The count step's answer: the hosts healthy and serving the model, and the catalog hash. */
export interface ServingHosts {
  hostIds: string[];
  /** The catalog's sha256 of the model build; null when the model is not in the catalog. */
  sha256: string | null;
  /** The build's file, for hosts that attest it before loading it (absent in older histories). */
  path?: string;
  /** Cycles recorded for the model before this one (the fan-out window's rotation); absent in older histories. */
  cycle?: number;
}

export interface DiscoveryOutcome extends PinUpdateOutcome {
  modelId: string;
  workflowId: string;
  /** The pin set after this cycle. */
  pinSet: PinSet;
}

/** What a cycle's log line says of its pin update (fingerprints and reasons only, never a nonce). */
export function pinUpdateSummary(o: PinUpdateOutcome) {
  return {
    mode: o.mode,
    transition: o.transition,
    backendCount: o.backendCount,
    newlyPinned: o.newlyPinned.length,
    evicted: o.evicted.length,
    reasons: o.reasons,
  };
}

/** Ids of the per-model Schedule and the prefix of its cycles' workflow ids. */
export const discoveryScheduleId = (modelId: string): string => `discovery:${modelId}`;
export const discoveryWorkflowId = (modelId: string, at: Date): string => `discovery:${modelId}:${at.toISOString()}`;

/** @default interval of a model's pin-set refresh, seconds */
export const DEFAULT_DISCOVERY_INTERVAL_S = 300;
export const MIN_DISCOVERY_INTERVAL_S = 10;

/** An attested provider's cycle: one remote build (provider, upstream slug). */
export interface AttestedDiscoveryInput {
  providerId: string;
  slug: string;
}

export interface AttestedDiscoveryOutcome extends PinUpdateOutcome {
  providerId: string;
  buildId: string;
  workflowId: string;
  pinSet: PinSet;
  /** Backend indices attested this cycle (a capped cycle covers a rotating window). */
  indices: number[];
}

/** Ids of a remote build's Schedule and of a cycle started now. */
export const attestedScheduleId = (i: AttestedDiscoveryInput): string => `discovery:${i.providerId}:${i.slug}`;
export const attestedWorkflowId = (i: AttestedDiscoveryInput, at: Date): string => `discovery:${i.providerId}:${i.slug}:${at.toISOString()}`;
