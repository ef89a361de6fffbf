/**
 * CPU time of a process tree, by command name, from /proc (Linux): utime + stime of the root
 * and every descendant, in milliseconds. Benchmarks read it before and after a phase to report
 * CPU-ms per request of each process (a Node gateway, its Temporal server, a Python proxy).
 */
import { readdir, readFile } from 'node:fs/promises';

/** Milliseconds of CPU by command name (e.g. `node`, `temporal`, `python3`). */
export type CpuSample = Record<string, number>;

const TICK_MS = 10; // USER_HZ is 100 on Linux

async function stat(pid: number): Promise<{ pid: number; ppid: number; comm: string; ms: number } | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/stat`, 'utf8');
    const close = raw.lastIndexOf(')');
    const comm = raw.slice(raw.indexOf('(') + 1, close);
    const f = raw.slice(close + 2).split(' ');
    // After "pid (comm) ": state ppid … utime(14th field overall) stime(15th).
    return { pid, ppid: Number(f[1]), comm, ms: (Number(f[11]) + Number(f[12])) * TICK_MS };
  } catch {
    return undefined;
  }
}

export async function cpuMsOfTree(root: number): Promise<CpuSample> {
  const all = (await Promise.all((await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map((d) => stat(Number(d))))).filter((x) => x !== undefined);
  const byParent = new Map<number, typeof all>();
  for (const p of all) byParent.set(p.ppid, [...(byParent.get(p.ppid) ?? []), p]);
  const out: CpuSample = {};
  const visit = (pid: number) => {
    const p = all.find((x) => x.pid === pid);
    if (p && p.comm !== 'sh') out[p.comm] = (out[p.comm] ?? 0) + p.ms;
    for (const c of byParent.get(pid) ?? []) visit(c.pid);
  };
  visit(root);
  return out;
}
