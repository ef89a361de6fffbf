/**
 * A private PostgreSQL cluster for the tests and CI when none is given: initdb (as the
 * `postgres` user when we are root — initdb refuses root) with trust auth in a gitignored
 * folder, started with pg_ctl on a spare port, stopped when the run ends. The cluster folder
 * is kept, so the next run only starts it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';

export interface PrivateCluster {
  url: string;
  /** `fast` (default) waits for clients to go; `immediate` is a crash (what an outage test wants). */
  stop(mode?: 'fast' | 'immediate'): void;
  /** Starts it again after a stop (same folder, same port). */
  start(): void;
}

function findPgBin(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    for (const v of readdirSync(root).sort().reverse()) {
      const p = path.join(root, v, 'bin', name);
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

function userIds(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return undefined;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export function startPrivateCluster(baseDir: string, port: number): PrivateCluster {
  const initdb = findPgBin('initdb');
  const pgCtl = findPgBin('pg_ctl');
  if (!initdb || !pgCtl) {
    throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql, or set FLEET_TEST_DATABASE_URL');
  }
  const dataDir = path.join(baseDir, 'data');
  const asRoot = process.getuid?.() === 0;
  const pgUser = asRoot ? userIds('postgres') : undefined;
  if (asRoot && !pgUser) throw new Error('running as root but no `postgres` user exists to own the cluster');
  mkdirSync(baseDir, { recursive: true });
  if (pgUser) {
    chownSync(baseDir, pgUser.uid, pgUser.gid);
    chmodSync(baseDir, 0o700);
  }
  const run = (bin: string, args: string[]) => {
    const cmd = pgUser ? 'su' : bin;
    const full = pgUser ? ['postgres', '-s', '/bin/sh', '-c', [bin, ...args].map(shellQuote).join(' ')] : args;
    execFileSync(cmd, full, { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    run(initdb, ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync']);
  }
  const opts = `-p ${port} -k ${baseDir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const start = () => run(pgCtl, ['-D', dataDir, '-o', opts, '-l', path.join(baseDir, 'server.log'), '-w', 'start']);
  start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: (mode = 'fast') => {
      try {
        run(pgCtl, ['-D', dataDir, '-m', mode, '-w', 'stop']);
      } catch {
        /* already stopped */
      }
    },
    start,
  };
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
