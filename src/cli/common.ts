/**
 * What the `fleet` subcommands share: reading the config once (and setting the log level),
 * running a stack until a signal, argument parsers, and talking to a running API over HTTP
 * with the admin token. A `CliError` is a one-line failure with its exit code.
 */
import { InvalidArgumentError } from 'commander';
import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import { ConfigError, HOST_ID_PATTERN, HOST_ID_RULE, loadConfig, type FleetConfig } from '../config.js';
import { configureLogger, log } from '../logger.js';
import { startStack, type Stack, type StackOptions } from '../stack.js';

/** A failure to report to the user in one line, with the process exit code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function config(): FleetConfig {
  const c = loadConfig();
  configureLogger(c.logLevel);
  return c;
}

export function requireDatabaseUrl(c: FleetConfig, command: string): void {
  if (!c.databaseUrl) {
    throw new ConfigError(
      `DATABASE_URL: required for \`fleet ${command}\` (PGlite serves a single process; use \`fleet dev\` to run everything in one).`,
    );
  }
}

/** Runs a stack until SIGINT/SIGTERM, then stops it; a second signal exits at once. */
export async function runUntilSignal(opts: StackOptions, onReady?: (s: Stack) => Promise<void> | void): Promise<void> {
  // Listen first: a signal that arrives during start-up still shuts down cleanly.
  const signalled = new Promise<void>((resolve) => {
    let count = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++count > 1) process.exit(130);
      log.info({ signal: sig }, 'shutting down');
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  const stack = await startStack(opts);
  try {
    await onReady?.(stack);
    await signalled;
  } finally {
    await stack.stop();
  }
}

export function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

export function hostId(v: string): string {
  if (!HOST_ID_PATTERN.test(v)) throw new InvalidArgumentError(HOST_ID_RULE);
  return v;
}

/** The API's base URL: `--url`, else this machine's FLEET_HTTP_PORT. */
export function apiBase(url: string | undefined): string {
  const raw = url ?? `http://127.0.0.1:${config().http.port}`;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new CliError(`--url: not a URL: ${raw}`, 2);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new CliError(`--url: expected http(s), got ${raw}`, 2);
  return parsed.href.replace(/\/+$/, '');
}

/**
 * One JSON request to the API, with the admin token (FLEET_ADMIN_TOKEN) when one is set: every
 * command here talks to `/admin/*`. node:http rather than fetch: fetch gives up on a response
 * whose headers take over 5 minutes, and `models load` waits for a load that may.
 */
export function callApi(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  base: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const url = new URL(base + route);
  const transport = url.protocol === 'https:' ? https : http;
  const adminToken = loadConfig().adminToken;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (adminToken) headers.authorization = `Bearer ${adminToken}`;
    if (payload) headers['content-type'] = 'application/json';
    if (method !== 'GET') headers['content-length'] = String(payload?.length ?? 0);
    const req = transport.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: kept as text for the error message
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => reject(new CliError(`cannot reach the API at ${base} (${err.code ?? err.message})`, 2)));
    req.end(payload);
  });
}

/** The envelope's message for a non-2xx answer, as a CliError (exit 1: the API said no). */
export function apiFailure(status: number, body: unknown): CliError {
  const envelope = z.object({ error: z.object({ message: z.string(), code: z.string().nullable().optional() }) }).safeParse(body);
  const detail = envelope.success
    ? `${envelope.data.error.message}${envelope.data.error.code ? ` (${envelope.data.error.code})` : ''}`
    : String(body).slice(0, 200);
  return new CliError(`HTTP ${status}: ${detail}`, 1);
}

/** The `--url` option of every subcommand that talks to a running API. */
export const URL_OPTION = ['--url <url>', 'API base URL (default http://127.0.0.1:FLEET_HTTP_PORT)'] as const;

export interface ApiCall {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  base: string;
  route: string;
  body?: unknown;
  /** The success status (default 200). */
  ok?: number;
}

/**
 * One API call whose answer has a known shape: any other status is the API's error (its
 * envelope's message), an answer of another shape fails with exit 1.
 */
export async function apiJson<T>(schema: z.ZodType<T>, call: ApiCall): Promise<T> {
  return (await apiAnswer(schema, call)).data;
}

/** Like apiJson, with the body as the API sent it (every field, for `--json`). */
async function apiAnswer<T>(schema: z.ZodType<T>, call: ApiCall): Promise<{ data: T; body: unknown }> {
  const { status, body } = await callApi(call.method ?? 'GET', call.base, call.route, call.body);
  if (status !== (call.ok ?? 200)) throw apiFailure(status, body);
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new CliError(`unexpected answer from ${call.base}${call.route} (is this an inference-fleet API?)`, 1);
  return { data: parsed.data, body };
}

/** `--json` of every listing command: the API's answer as is, for scripts and `jq`. */
export const JSON_OPTION = ['--json', "print the API's JSON answer instead of a table"] as const;

/** A listing command's output: the API's JSON with `--json`, else rendered for people. */
export async function printListing<T>(schema: z.ZodType<T>, call: ApiCall, o: { json?: boolean; render: (answer: T) => string }): Promise<void> {
  const { data, body } = await apiAnswer(schema, call);
  process.stdout.write(o.json ? `${JSON.stringify(body, null, 2)}\n` : o.render(data));
}
