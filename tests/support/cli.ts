/** `fleet …` as a child process, the way a user runs it: resolves with exit code and output, never rejects. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const fleetBin = path.resolve(import.meta.dirname, '../../bin/fleet.js');
const run = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runFleet(args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [fleetBin, ...args], { timeout: o.timeoutMs ?? 120_000, env: o.env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
