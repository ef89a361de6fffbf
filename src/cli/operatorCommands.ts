/**
 * Operator subcommands that talk to a running fleet: `status`, `keys`, `host rotate-key` and
 * `verify` (a response signature, checked offline). `models` is in modelCommands.ts.
 */
import { Command, InvalidArgumentError } from 'commander';
import http from 'node:http';
import { z } from 'zod';
import { keyAnswerSchema, keysListSchema, renderKeys } from '../keysView.js';
import { hostsResponseSchema, renderStatus } from '../statusView.js';
import { identityKeyPath, writeNewIdentityKey } from '../activities/hostIdentity.js';
import { parseSignedText, verifyHostSignature, verifyTeeSignature } from '../domain/teeSignatures.js';
import { readFile } from 'node:fs/promises';
import { CliError, config, int, hostId, apiBase, apiJson, callApi, apiFailure, JSON_OPTION, printListing, URL_OPTION } from './common.js';

async function fetchStatus(base: string): Promise<string> {
  const answer = await apiJson(hostsResponseSchema, { base, route: '/admin/hosts' });
  return renderStatus(answer.data, answer.quarantined, answer.replicas);
}

/** Re-renders every second until Ctrl-C; an API that goes away mid-watch is shown, not fatal. */
async function watchStatus(base: string, first: string): Promise<void> {
  let wake: () => void = () => undefined;
  let stopped = false;
  process.once('SIGINT', () => {
    stopped = true;
    wake();
  });
  for (let out = first; !stopped; ) {
    const when = new Date().toLocaleTimeString();
    // Clear the screen and home the cursor, so each frame replaces the previous one.
    process.stdout.write(`\x1b[2J\x1b[Hfleet status  ${base}  ${when}  (Ctrl-C to stop)\n\n${out}`);
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 1000);
    });
    if (stopped) break;
    out = await fetchStatus(base).catch((err: unknown) => {
      if (err instanceof CliError) return `${err.message}; retrying\n`;
      throw err;
    });
  }
}

export function registerOperatorCommands(program: Command): void {
  program
    .command('status')
    .description('hosts, their health and slots, and each model\'s state, requests and load progress (GET /admin/hosts)')
    .option(...URL_OPTION)
    .option(...JSON_OPTION)
    .option('--watch', 're-render every second until Ctrl-C (on a terminal; piped, it prints once)')
    .action(async (opts: { url?: string; watch?: boolean; json?: boolean }) => {
      const base = apiBase(opts.url);
      if (opts.json) {
        if (opts.watch) throw new CliError('--watch and --json do not go together', 2);
        await printListing(hostsResponseSchema, { base, route: '/admin/hosts' }, { json: true, render: () => '' });
        return;
      }
      // The first read decides: an API that is not there is an error, even with --watch.
      const first = await fetchStatus(base);
      // Redrawing is for a terminal: piped into a file or a pager, escape codes are noise.
      if (opts.watch && process.stdout.isTTY) return watchStatus(base, first);
      process.stdout.write(first);
      if (opts.watch) process.stderr.write('fleet: --watch: stdout is not a terminal, printed once\n');
    });

  const keys = program
    .command('keys')
    .description('API keys of a running fleet (POST/GET/DELETE /admin/keys; sends FLEET_ADMIN_TOKEN when set)');
  keys
    .command('create')
    .description('create a key for an account (created if new); the key is printed once and cannot be shown again')
    .requiredOption('--account <id>', 'account the key belongs to')
    .option('--name <name>', 'a label for the key')
    .option('--balance <tokens>', 'hard balance: lifetime tokens (prompt + completion) the key may spend', int('balance'))
    .option('--window-tokens <tokens>', 'rolling window: at most this many tokens …', int('window-tokens'))
    .option('--window-seconds <s>', '… in any window of this many seconds', int('window-seconds'))
    .option(...URL_OPTION)
    .action(async (opts: { account: string; name?: string; balance?: number; windowTokens?: number; windowSeconds?: number; url?: string }) => {
      if ((opts.windowTokens === undefined) !== (opts.windowSeconds === undefined)) {
        throw new InvalidArgumentError('--window-tokens and --window-seconds go together');
      }
      const base = apiBase(opts.url);
      const body = {
        account: opts.account,
        name: opts.name ?? null,
        balance_tokens: opts.balance ?? null,
        window_tokens: opts.windowTokens ?? null,
        window_seconds: opts.windowSeconds ?? null,
      };
      const k = await apiJson(keyAnswerSchema, { method: 'POST', base, route: '/admin/keys', body, ok: 201 });
      process.stdout.write(
        `created key ${k.id} for account ${k.account}\n${k.key}\n` +
          'Store it now: this is the only time it is shown (only a hash is kept).\n',
      );
    });
  keys
    .command('list')
    .description('keys with their budgets and spend (never a secret)')
    .option('--account <id>', 'only this account\'s keys')
    .option(...URL_OPTION)
    .option(...JSON_OPTION)
    .action(async (opts: { account?: string; url?: string; json?: boolean }) => {
      const base = apiBase(opts.url);
      const route = `/admin/keys${opts.account ? `?account=${encodeURIComponent(opts.account)}` : ''}`;
      await printListing(keysListSchema, { base, route }, { json: opts.json, render: (a) => renderKeys(a.data) });
    });
  keys
    .command('revoke <id>')
    .description('revoke a key: refused at once by this API process, within seconds by others')
    .option(...URL_OPTION)
    .action(async (id: string, opts: { url?: string }) => {
      const base = apiBase(opts.url);
      const { status, body } = await callApi('DELETE', base, `/admin/keys/${encodeURIComponent(id)}`);
      if (status !== 200) throw apiFailure(status, body);
      process.stdout.write(`revoked key ${id}\n`);
    });

  program
    .command('host')
    .description('operate on this machine\'s GPU-host state')
    .command('rotate-key')
    .description('replace the host\'s Ed25519 identity key (<FLEET_DATA_DIR>/hosts/<id>/identity.key); a running worker signs with it from its next attestation')
    .requiredOption('--host-id <id>', 'the host', hostId)
    .action(async (opts: { hostId: string }) => {
      const file = identityKeyPath(config().dataDir, opts.hostId);
      const fingerprint = await writeNewIdentityKey(file);
      process.stdout.write(`${file}\n  new key fingerprint ${fingerprint}\n`);
    });

  const signedCommon = { request_id: z.string(), model: z.string(), text: z.string(), signature: z.string(), signing_address: z.string() };
  const signatureAnswerSchema = z.discriminatedUnion('signature_kind', [
    z.object({ ...signedCommon, signature_kind: z.literal('host'), signing_algo: z.literal('ed25519'), fingerprint: z.string() }),
    z.object({ ...signedCommon, signature_kind: z.literal('provider_tee'), signing_algo: z.enum(['ed25519', 'ecdsa']), tls_cert_fingerprint: z.string() }),
  ]);

  program
    .command('verify <requestId>')
    .description("fetch a verifiable model response's signature (GET /v1/signature/:id) and check it offline: one verifier for own hosts and attested providers")
    .option(...URL_OPTION)
    .option('--text-file <file>', 'the response text as received: its sha256 must be the signed one (own hosts)')
    .option('--request-file <file>', 'the request body as sent: its sha256 must be the signed one (own hosts)')
    .option('--api-key <key>', 'API key for /v1 (default: $OPENAI_API_KEY)')
    .action(async (requestId: string, opts: { url?: string; textFile?: string; requestFile?: string; apiKey?: string }) => {
      const base = apiBase(opts.url);
      const key = opts.apiKey ?? process.env.OPENAI_API_KEY;
      const res = await fetch(`${base}/v1/signature/${encodeURIComponent(requestId)}`, {
        headers: { accept: 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      }).catch((err: Error) => {
        throw new CliError(`cannot reach ${base}: ${err.message}`, 1);
      });
      const body: unknown = await res.json().catch(() => null);
      if (res.status !== 200) throw apiFailure(res.status, body);
      const parsed = signatureAnswerSchema.safeParse(body);
      if (!parsed.success) throw new CliError(`${requestId}: not verified: malformed signature answer`, 1);
      const a = parsed.data;
      const notVerified = (reason: string) => new CliError(`${requestId}: not verified: ${reason}`, 1);
      if (!parseSignedText(a.text)) throw notVerified('the signed text is not <model>:<sha256>:<sha256>');
      if (a.signature_kind === 'provider_tee') {
        // The provider signed the exchange it had with the gateway; what a client can check
        // offline is the signature itself, by the key the gateway's pinned attestation names.
        if (!verifyTeeSignature({ text: a.text, signature: a.signature, signingAddress: a.signing_address, algo: a.signing_algo })) throw notVerified('bad_signature');
        process.stdout.write(
          `${requestId}: ok (model ${a.model}, provider TEE ${a.signing_algo} key ${a.signing_address.slice(0, 18)}…, attested TLS key ${a.tls_cert_fingerprint.slice(0, 16)}…)\n`,
        );
        return;
      }
      const text = opts.textFile === undefined ? undefined : await readFile(opts.textFile, 'utf8');
      const requestBody = opts.requestFile === undefined ? undefined : await readFile(opts.requestFile);
      const verdict = verifyHostSignature(
        { text: a.text, signature: a.signature, signingAddress: a.signing_address, fingerprint: a.fingerprint },
        { ...(text !== undefined ? { text } : {}), ...(requestBody !== undefined ? { requestBody } : {}) },
      );
      if (!verdict.ok) throw notVerified(verdict.reason);
      const checked = [text !== undefined ? 'response text matches' : 'response text not checked', requestBody !== undefined ? 'request body matches' : 'request body not checked'];
      process.stdout.write(
        `${requestId}: ok (model ${a.model}, build ${a.text.slice(0, 12)}…, host key ${verdict.fingerprint.slice(0, 16)}…, ${checked.join(', ')})\n`,
      );
    });

}
