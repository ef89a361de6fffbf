/**
 * The design floor's workflows (bench/floor.ts): what Temporal itself costs for a request shaped
 * like ours, with nothing of the gateway in it. `bare` returns at once; `oneActivity` runs one
 * activity on another worker's queue (as `inferenceRequest` runs `generate` on a host's queue).
 */
import { proxyActivities } from '@temporalio/workflow';

const { echo } = proxyActivities<{ echo(x: string): Promise<string> }>({ taskQueue: 'bench.floor-activity', startToCloseTimeout: '10 seconds' });

export async function bare(x: string): Promise<string> {
  return x;
}

export async function oneActivity(x: string): Promise<string> {
  return echo(x);
}
