/**
 * The production QuoteVerifier: checks Intel TDX quotes with DCAP (`@phala/dcap-qvl`) against
 * collateral (TCB info, QE identity, CRLs) from the deployment's PCCS, and hands back the
 * quote's 64 bytes of report_data. Collateral is the same for every machine of one platform
 * model, so it is cached per (FMSPC, PCK CA) until Intel's own `nextUpdate`, which keeps
 * provider admission off the PCCS's critical path.
 */
import { createRequire } from 'node:module';
import { hexToBytes } from '@noble/hashes/utils.js';
import type { Collateral } from '@phala/dcap-qvl';
import { REPORT_DATA_BYTES, type QuoteVerdict, type QuoteVerifier } from './quoteVerifier.js';

// The package is CommonJS only; its index.d.ts describes the main export.
const dcap = createRequire(import.meta.url)('@phala/dcap-qvl') as typeof import('@phala/dcap-qvl');

/** What the library verifies with; `getCollateral` also attaches the quote's PCK chain. */
export type DcapCollateral = Collateral & { pck_certificate_chain?: string | null };

/** Where collateral comes from: the PCCS in production, fixtures in tests. */
export interface CollateralSource {
  fetch(quoteBytes: Uint8Array): Promise<DcapCollateral>;
}

export interface DcapVerifierOptions {
  pccsUrl: string;
  /** TCB statuses admitted; anything else is refused as `tcb_status: <status>`. */
  allowedTcbStatuses?: readonly string[];
  collateralSource?: CollateralSource;
  /** A PCCS that never answers must not hang admission. */
  fetchTimeoutMs?: number;
  log?: { warn(obj: object, msg: string): void };
}

const TEE_TYPE_TDX = 0x81;
/** Header (48) + TD report 1.0 (584) + auth-data length (4): below this nothing can parse. */
const MIN_QUOTE_BYTES = 48 + 584 + 4;
const PCK_CERT_CHAIN = 5;

export function pccsCollateralSource(pccsUrl: string): CollateralSource {
  return { fetch: (quoteBytes) => dcap.getCollateral(pccsUrl, quoteBytes) };
}

/** Earliest `nextUpdate` of the TCB info and QE identity, in seconds; 0 (do not cache) if unreadable. */
function validUntil(c: DcapCollateral): number {
  const times = [c.tcb_info, c.qe_identity].map((json) => {
    try {
      return Date.parse((JSON.parse(json) as { nextUpdate?: string }).nextUpdate ?? '') / 1000;
    } catch {
      return Number.NaN;
    }
  });
  return times.some(Number.isNaN) ? 0 : Math.min(...times);
}

/** A short, URL-free category: the library's own errors embed the PCCS URL. */
function fetchFailure(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (msg === 'timeout') return 'collateral: PCCS timed out';
  const status = /: (\d{3})$/.exec(msg);
  if (status) return `collateral: PCCS answered ${status[1]}`;
  if (err instanceof SyntaxError || /^Missing /.test(msg)) return 'collateral: malformed PCCS response';
  if (err instanceof TypeError) return 'collateral: PCCS unreachable';
  return 'collateral: fetch failed';
}

function libraryMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, 200);
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return `${err.message}${cause}`.split('\n')[0]!.slice(0, 200);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function createDcapVerifier(opts: DcapVerifierOptions): QuoteVerifier {
  const allowed = new Set(opts.allowedTcbStatuses ?? ['UpToDate']);
  const source = opts.collateralSource ?? pccsCollateralSource(opts.pccsUrl);
  const timeoutMs = opts.fetchTimeoutMs ?? 15_000;
  /** One entry per key; a pending fetch is shared by every verify that arrives meanwhile. */
  const cache = new Map<string, { collateral: Promise<DcapCollateral>; validUntil: number }>();

  function collateralFor(key: string | null, bytes: Uint8Array, now: number): Promise<DcapCollateral> {
    // Without an embedded PCK chain the key (FMSPC) is only known after fetching: no caching.
    if (key === null) return withTimeout(source.fetch(bytes), timeoutMs);
    const hit = cache.get(key);
    if (hit && now < hit.validUntil) return hit.collateral;
    const entry = {
      validUntil: Number.POSITIVE_INFINITY,
      // The PCK chain belongs to the machine whose quote fetched it: drop it so each quote
      // is checked against the chain embedded in itself, not another host's.
      collateral: withTimeout(source.fetch(bytes), timeoutMs).then((c) => {
        entry.validUntil = validUntil(c);
        return { ...c, pck_certificate_chain: null };
      }),
    };
    // Failures are not cached: the next verify tries again.
    entry.collateral.catch(() => cache.get(key) === entry && cache.delete(key));
    cache.set(key, entry);
    return entry.collateral;
  }

  return {
    kind: 'dcap',
    async verify(quoteHex, nowSeconds): Promise<QuoteVerdict> {
      let bytes: Uint8Array;
      try {
        bytes = hexToBytes(quoteHex);
      } catch {
        return { ok: false, reason: 'quote: not hex' };
      }
      if (bytes.length < MIN_QUOTE_BYTES) return { ok: false, reason: `quote: too short (${bytes.length} bytes)` };
      // Checked on the raw header so an SGX quote is refused before any PCCS traffic.
      const teeType = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
      if (teeType !== TEE_TYPE_TDX) return { ok: false, reason: `quote: not a TDX quote (${teeType === 0 ? 'SGX' : `TEE type ${teeType}`})` };
      let key: string | null;
      try {
        const quote = dcap.Quote.parse(bytes);
        key = quote.authData.intoV3().certificationData.certType === PCK_CERT_CHAIN
          ? `tdx:${Buffer.from(dcap.intel.getFmspc(quote)).toString('hex')}:${dcap.intel.getCa(quote)}`
          : null;
      } catch (err) {
        return { ok: false, reason: `quote: malformed (${libraryMessage(err)})` };
      }
      let collateral: DcapCollateral;
      try {
        collateral = await collateralFor(key, bytes, nowSeconds);
      } catch (err) {
        opts.log?.warn({ err: libraryMessage(err), key }, 'DCAP collateral fetch failed');
        return { ok: false, reason: fetchFailure(err) };
      }
      try {
        const result = dcap.verify(bytes, collateral, nowSeconds);
        const td = result.report.asTd10();
        if (!td || td.reportData.length !== REPORT_DATA_BYTES) return { ok: false, reason: 'quote: no TD report in the verified quote' };
        if (!allowed.has(result.status)) return { ok: false, reason: `tcb_status: ${result.status}` };
        return { ok: true, reportData: Uint8Array.from(td.reportData), tcbStatus: result.status, advisoryIds: [...result.advisory_ids] };
      } catch (err) {
        return { ok: false, reason: `quote: ${libraryMessage(err)}` };
      }
    },
  };
}
