/**
 * Task-queue names, from one place. Sandbox-safe: workflows import it to address a host.
 * A GPU host listens on a queue of its own so work for a model it holds reaches only it.
 */
import type { Replica } from './replicas.js';

export const CONTROL_PLANE_QUEUE = 'fleet.control-plane';

/**
 * The request workflows (`inferenceRequest`), served by the control-plane process from a bundle
 * of their own: a workflow's modules are evaluated for every execution, and this bundle holds
 * only what a request runs (not the discovery cycles' signature libraries). Requests started
 * before it existed finish on the control-plane queue, which still registers the workflow.
 */
export const REQUEST_QUEUE = 'fleet.requests';

export function hostQueue(hostId: string): string {
  return `host.${hostId}`;
}

/**
 * Remote providers' `generate` and discovery calls: one queue served by any number of stateless
 * provider workers (`fleet worker provider`, also inside `fleet dev` and the control plane).
 */
export const PROVIDER_QUEUE = 'fleet.providers';

/** The queue an attempt on a replica runs on: the one function every caller goes through. */
export function replicaQueue(r: Replica): string {
  return r.kind === 'host' ? hostQueue(r.hostId) : PROVIDER_QUEUE;
}
