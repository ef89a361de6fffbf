/**
 * The design floor, measured on a given Temporal server in the same run as the gateway
 * (bench/proxy.ts): a bare workflow, and a workflow running one activity on another worker's
 * queue, started eagerly from a client sharing the workflow worker's connection (as the gateway's
 * API and control-plane worker do inside `fleet dev`). Latency at c=1 and workflows per second at
 * c=N (closed loop), with the CPU-ms per workflow of this process and of the server's process
 * tree. Whatever the gateway adds on top of `oneActivity` is the gateway's own cost.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { cpuMsOfTree } from './procCpu.js';
import { percentile, round } from './stats.js';

const WORKFLOW_QUEUE = 'bench.floor-workflow';
const ACTIVITY_QUEUE = 'bench.floor-activity';
const WORKFLOWS = fileURLToPath(new URL('./floor/workflows.ts', import.meta.url));

export interface FloorRow {
  name: 'floor-bare' | 'floor-activity';
  p50Ms: number;
  p99Ms: number;
  perS: number;
  cpuMsPerWorkflow: Record<string, number>;
}

export interface Floor {
  /** One c=1 sample of each kind (interleave these with the other targets). */
  sample(): Promise<{ bare: number; oneActivity: number }>;
  /** c=`clients` closed loop of `oneActivity` and of `bare` for `seconds` each; `serverPid`: a process tree holding the `temporal` server. */
  throughput(o: { clients: number; seconds: number; serverPid: number }): Promise<Record<FloorRow['name'], { perS: number; cpuMsPerWorkflow: Record<string, number> }>>;
  stop(): Promise<void>;
}

export async function startFloor(address: string): Promise<Floor> {
  const connection = await NativeConnection.connect({ address });
  const client = new Client({ connection });
  const [wf, act] = await Promise.all([
    Worker.create({ connection, taskQueue: WORKFLOW_QUEUE, workflowsPath: WORKFLOWS }),
    Worker.create({ connection, taskQueue: ACTIVITY_QUEUE, activities: { echo: async (x: string) => x } }),
  ]);
  const runs = [wf.run(), act.run()];
  const once = async (type: 'bare' | 'oneActivity') => {
    const t0 = performance.now();
    await client.workflow.execute(type, { taskQueue: WORKFLOW_QUEUE, workflowId: `floor-${randomUUID()}`, args: ['x'], requestEagerStart: true });
    return performance.now() - t0;
  };
  return {
    async sample() {
      return { bare: await once('bare'), oneActivity: await once('oneActivity') };
    },
    async throughput(o) {
      const out = {} as Record<FloorRow['name'], { perS: number; cpuMsPerWorkflow: Record<string, number> }>;
      for (const [name, type] of [['floor-activity', 'oneActivity'], ['floor-bare', 'bare']] as const) {
        // This process alone (its client and two workers; not its children), and the server.
        const selfMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
        const before = { self: selfMs(), server: (await cpuMsOfTree(o.serverPid)).temporal ?? 0 };
        let done = 0;
        const stopAt = performance.now() + o.seconds * 1000;
        const t0 = performance.now();
        await Promise.all(Array.from({ length: o.clients }, async () => {
          while (performance.now() < stopAt) await once(type).then(() => done++, () => undefined);
        }));
        const wall = (performance.now() - t0) / 1000;
        const n = Math.max(1, done);
        const cpu = { 'client+workers': round((selfMs() - before.self) / n), temporal: round((((await cpuMsOfTree(o.serverPid)).temporal ?? 0) - before.server) / n) };
        out[name] = { perS: round(done / wall), cpuMsPerWorkflow: cpu };
      }
      return out;
    },
    async stop() {
      wf.shutdown();
      act.shutdown();
      await Promise.allSettled(runs);
      await connection.close();
    },
  };
}

export const p50p99 = (xs: number[]) => ({ p50Ms: round(percentile(xs, 50)), p99Ms: round(percentile(xs, 99)) });
