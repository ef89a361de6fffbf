/**
 * The peers `bench/proxy --peers` measures beside this gateway, installed once into a
 * gitignored folder (`.tools/peers/`) from the package registries and run in front of the same
 * upstream: LiteLLM proxy (`pip install 'litellm[proxy]'` into a venv; one worker, telemetry,
 * callbacks and spend logs off, as a fair minimal proxy) and the Portkey gateway
 * (`@portkey-ai/gateway@1.15.2` with `@hono/node-server@1.13.5`, the combination that streams).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { stringify } from 'yaml';

export interface PeerTools {
  litellm: string;
  portkeyMain: string;
}

export interface Peer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const exists = (p: string) => access(p).then(() => true, () => false);

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

export async function installPeers(dir: string, log: Logger): Promise<PeerTools> {
  await mkdir(dir, { recursive: true });
  const litellm = path.join(dir, 'venv', 'bin', 'litellm');
  if (!(await exists(litellm))) {
    log.info('installing LiteLLM proxy (pip, once)');
    await run('python3', ['-m', 'venv', 'venv'], dir);
    await run(path.join(dir, 'venv', 'bin', 'pip'), ['install', '--quiet', 'litellm[proxy]'], dir);
  }
  const portkeyDir = path.join(dir, 'portkey');
  const portkeyMain = path.join(portkeyDir, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
  if (!(await exists(portkeyMain))) {
    log.info('installing the Portkey gateway (npm, once)');
    await mkdir(portkeyDir, { recursive: true });
    await writeFile(
      path.join(portkeyDir, 'package.json'),
      JSON.stringify({ name: 'fleet-bench-portkey', private: true, dependencies: { '@portkey-ai/gateway': '1.15.2' }, overrides: { '@hono/node-server': '1.13.5' } }),
    );
    await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], portkeyDir);
  }
  return { litellm, portkeyMain };
}

async function startAndWait(child: ChildProcess, url: string, ready: string, what: string): Promise<Peer> {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited ${child.exitCode}: ${out}`);
    const ok = await fetch(`${url}${ready}`).then((r) => r.status < 500, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`${what} did not come up: ${out}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    url,
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}

export async function startLiteLlm(tools: PeerTools, o: { port: number; dir: string; upstreams: Record<string, string> }): Promise<Peer> {
  const config = path.join(o.dir, 'litellm.yaml');
  await writeFile(
    config,
    stringify({
      model_list: Object.entries(o.upstreams).map(([name, base]) => ({ model_name: name, litellm_params: { model: 'openai/tiny', api_base: base, api_key: 'sk-bench' } })),
      litellm_settings: { telemetry: false, callbacks: [], drop_params: true },
      general_settings: { dangerously_permit_weak_or_unset_master_key: true, disable_spend_logs: true },
    }),
  );
  const child = spawn(tools.litellm, ['--config', config, '--port', String(o.port), '--host', '127.0.0.1', '--num_workers', '1'], {
    env: { ...process.env, LITELLM_TELEMETRY: 'False', LITELLM_LOG: 'ERROR' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return startAndWait(child, `http://127.0.0.1:${o.port}`, '/health/liveliness', 'LiteLLM proxy');
}

export async function startPortkey(tools: PeerTools, o: { port: number }): Promise<Peer> {
  const child = spawn(process.execPath, [tools.portkeyMain, `--port=${o.port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  return startAndWait(child, `http://127.0.0.1:${o.port}`, '/', 'Portkey gateway');
}
