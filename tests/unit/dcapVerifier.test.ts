/** The DCAP quote verifier on real TDX quotes and collateral (fixtures of Phala's dcap-qvl). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createDcapVerifier, type CollateralSource, type DcapCollateral } from '../../src/attestation/dcapVerifier.js';

// Copied unchanged from the project's shared fixtures (Phala dcap-qvl samples, MIT: see LICENSE-samples).
const FIXTURES = new URL('../fixtures/tdx/', import.meta.url);
const quoteBytes = (name: string): Buffer => readFileSync(new URL(name, FIXTURES)); // raw binary
const collateral = (name: string): DcapCollateral => JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8')) as DcapCollateral;

const QUOTE = quoteBytes('tdx_quote');
const QUOTE_HEX = QUOTE.toString('hex');
const COLLATERAL = collateral('tdx_quote_collateral.json');
const OUTDATED_HEX = quoteBytes('tdx_quote_outdated').toString('hex');
const OUTDATED_COLLATERAL = collateral('tdx_quote_outdated_collateral.json');
const REPORT_DATA =
  '9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20';

const VALID_AT = 1751000000; // 2025-06-27
const TCB_NEXT_UPDATE = Date.parse('2025-07-19T10:16:03Z') / 1000; // earlier than the QE identity's
const OUTDATED_AT = 1772323200; // 2026-03-01
const PCCS_URL = 'https://pccs.internal.example:8081/sgx/certification/v4/';

/** Serves the fixture collateral matching the quote (by its signed header and TD report), counting calls. */
const SIGNED = 48 + 584;
function fixtureSource(): CollateralSource & { calls: number } {
  const src = {
    calls: 0,
    async fetch(bytes: Uint8Array) {
      src.calls++;
      return Buffer.from(bytes).subarray(0, SIGNED).equals(QUOTE.subarray(0, SIGNED)) ? COLLATERAL : OUTDATED_COLLATERAL;
    },
  };
  return src;
}

const verifier = (source: CollateralSource = fixtureSource(), allowedTcbStatuses?: readonly string[]) =>
  createDcapVerifier({ pccsUrl: PCCS_URL, collateralSource: source, allowedTcbStatuses });

test('a valid TDX quote gives its report_data and TCB status', async () => {
  const v = verifier();
  assert.equal(v.kind, 'dcap');
  const verdict = await v.verify(QUOTE_HEX, VALID_AT);
  assert.ok(verdict.ok, JSON.stringify(verdict));
  assert.equal(Buffer.from(verdict.reportData).toString('hex'), REPORT_DATA);
  assert.equal(verdict.reportData.length, 64);
  assert.equal(verdict.tcbStatus, 'UpToDate');
  assert.deepEqual(verdict.advisoryIds, []);
});

test('the same quote today is refused: its collateral has expired', async () => {
  const verdict = await verifier().verify(QUOTE_HEX, Math.floor(Date.now() / 1000));
  assert.deepEqual(verdict, { ok: false, reason: 'quote: TCBInfo expired' });
});

test('a quote with one byte flipped is refused', async () => {
  const tampered = Buffer.from(QUOTE);
  tampered[700]! ^= 0x01;
  const verdict = await verifier().verify(tampered.toString('hex'), VALID_AT);
  assert.deepEqual(verdict, { ok: false, reason: 'quote: QE report hash mismatch' });
});

test('an outdated platform matches no TCB level', async () => {
  const verdict = await verifier().verify(OUTDATED_HEX, OUTDATED_AT);
  assert.deepEqual(verdict, { ok: false, reason: 'quote: No matching TCB level found' });
});

test('a TCB status outside the policy is refused', async () => {
  const verdict = await verifier(fixtureSource(), ['SWHardeningNeeded']).verify(QUOTE_HEX, VALID_AT);
  assert.deepEqual(verdict, { ok: false, reason: 'tcb_status: UpToDate' });
  const widened = await verifier(fixtureSource(), ['UpToDate', 'SWHardeningNeeded']).verify(QUOTE_HEX, VALID_AT);
  assert.ok(widened.ok);
});

test('collateral is fetched once per platform until its nextUpdate', async () => {
  const source = fixtureSource();
  const v = verifier(source);
  const [a, b] = await Promise.all([v.verify(QUOTE_HEX, VALID_AT), v.verify(QUOTE_HEX, VALID_AT)]);
  assert.ok(a.ok && b.ok);
  assert.equal(source.calls, 1, 'concurrent verifies share one fetch');
  assert.ok((await v.verify(QUOTE_HEX, VALID_AT + 86_400)).ok);
  assert.equal(source.calls, 1, 'served from the cache');
  // Another FMSPC is another entry (its verdict does not matter here).
  await v.verify(OUTDATED_HEX, OUTDATED_AT);
  assert.equal(source.calls, 2);
  // Past nextUpdate the entry is stale and fetched again (the fixture is still old, hence expired).
  assert.deepEqual(await v.verify(QUOTE_HEX, TCB_NEXT_UPDATE + 1), { ok: false, reason: 'quote: TCBInfo expired' });
  assert.equal(source.calls, 3);
});

test('a failing PCCS gives a collateral reason without its URL, and is not cached', async () => {
  let calls = 0;
  const source: CollateralSource = {
    async fetch() {
      if (++calls === 1) throw new Error(`Failed to fetch ${PCCS_URL}pckcrl?ca=processor: 503`);
      return COLLATERAL;
    },
  };
  const warnings: object[] = [];
  const v = createDcapVerifier({ pccsUrl: PCCS_URL, collateralSource: source, log: { warn: (obj) => warnings.push(obj) } });
  const failed = await v.verify(QUOTE_HEX, VALID_AT);
  assert.deepEqual(failed, { ok: false, reason: 'collateral: PCCS answered 503' });
  assert.ok(!failed.ok && !failed.reason.includes('pccs.internal'));
  assert.equal(warnings.length, 1);
  assert.ok((await v.verify(QUOTE_HEX, VALID_AT)).ok, 'the next verify fetches again');
  assert.equal(calls, 2);

  const unreachable = createDcapVerifier({
    pccsUrl: PCCS_URL,
    collateralSource: { fetch: () => Promise.reject(new TypeError('fetch failed')) },
  });
  assert.deepEqual(await unreachable.verify(QUOTE_HEX, VALID_AT), { ok: false, reason: 'collateral: PCCS unreachable' });
  const hung = createDcapVerifier({ pccsUrl: PCCS_URL, fetchTimeoutMs: 20, collateralSource: { fetch: () => new Promise(() => {}) } });
  assert.deepEqual(await hung.verify(QUOTE_HEX, VALID_AT), { ok: false, reason: 'collateral: PCCS timed out' });
});

test('malformed and non-TDX quotes are refused before any collateral fetch', async () => {
  const source = fixtureSource();
  const v = verifier(source);
  assert.deepEqual(await v.verify('not hex!', VALID_AT), { ok: false, reason: 'quote: not hex' });
  assert.deepEqual(await v.verify('', VALID_AT), { ok: false, reason: 'quote: too short (0 bytes)' });
  assert.deepEqual(await v.verify(QUOTE_HEX.slice(0, 200), VALID_AT), { ok: false, reason: 'quote: too short (100 bytes)' });
  const sgx = Buffer.from(QUOTE);
  sgx.writeUInt32LE(0, 4); // TEE type SGX
  assert.deepEqual(await v.verify(sgx.toString('hex'), VALID_AT), { ok: false, reason: 'quote: not a TDX quote (SGX)' });
  const truncated = QUOTE_HEX.slice(0, 2 * 1000); // long enough for the header, not for the auth data
  assert.deepEqual(await v.verify(truncated, VALID_AT), { ok: false, reason: 'quote: malformed (Not enough data to fill buffer)' });
  assert.equal(source.calls, 0);
});

test('the default PCCS source is built from the URL (not called here: no network)', async () => {
  const v = createDcapVerifier({ pccsUrl: PCCS_URL });
  assert.equal(v.kind, 'dcap');
  assert.deepEqual(await v.verify('zz', VALID_AT), { ok: false, reason: 'quote: not hex' });
});
