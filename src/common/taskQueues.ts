/**
 * Task-queue names, from one place. Sandbox-safe: workflows import it to address a host.
 * A GPU host listens on a queue of its own so work for a model it holds reaches only it.
 */
export const CONTROL_PLANE_QUEUE = 'fleet.control-plane';

export function hostQueue(hostId: string): string {
  return `host.${hostId}`;
}
