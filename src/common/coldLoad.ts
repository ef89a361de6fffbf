/**
 * The coldLoad workflow's id and shapes, shared by the workflow and the activity that starts
 * it (so activity code never imports workflow modules). Sandbox-safe.
 */
export interface ColdLoadInput {
  hostId: string;
  modelId: string;
}

export interface ColdLoadResult extends ColdLoadInput {
  /** Models unloaded to make room. */
  evicted: string[];
}

/** One id per (host, model): concurrent requests attach to the same load. */
export function coldLoadWorkflowId(hostId: string, modelId: string): string {
  return `coldload:${hostId}:${modelId}`;
}
