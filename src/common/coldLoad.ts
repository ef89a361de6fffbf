/**
 * The coldLoad and modelUnload workflows' ids and shapes, shared by the workflows and the code that
 * starts them (so activity code never imports workflow modules). Sandbox-safe.
 */
export interface ColdLoadInput {
  hostId: string;
  modelId: string;
}

/** What a request (or reassignment) asks of `awaitColdLoad`. */
export interface AwaitColdLoadInput extends ColdLoadInput {
  /**
   * Hosts whose load of this build would do (the alias's pool): an existing load on one of
   * them is joined instead of starting another. Absent: any host.
   */
  hosts?: string[];
}

export interface ColdLoadResult extends ColdLoadInput {
  /** Models unloaded to make room. */
  evicted: string[];
}

/** One id per (host, model): concurrent requests attach to the same load. */
export function coldLoadWorkflowId(hostId: string, modelId: string): string {
  return `coldload:${hostId}:${modelId}`;
}

/** An operator's unload of one model from one host (the `modelUnload` workflow). */
export interface ModelUnloadResult extends ColdLoadInput {
  /** False: the model was not loaded there (nothing to do). */
  unloaded: boolean;
}

/** One id per (host, model), like a load's: two operators' unloads are one. */
export function modelUnloadWorkflowId(hostId: string, modelId: string): string {
  return `unload:${hostId}:${modelId}`;
}
