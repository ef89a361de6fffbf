/**
 * The pure rules of remote providers, table by table: canonical-id lists, replica ordering and
 * tiers (own first, attested next, plaintext last and never for an attested model, demotion
 * behind the next tier, rotation inside the leading provider group, capability skips), the
 * classification of upstream failures and its backoff, and merge versus prune of a refresh.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCanonicalMap } from '../../src/domain/canonicalIds.js';
import { planRefresh, remoteBuildId, type RemoteBuild } from '../../src/domain/providerCatalog.js';
import { rankReplicas, type HostOffer, type ProviderOffer, type RankInput } from '../../src/domain/replicas.js';
import { classifyUpstreamFailure, parseRetryAfter, retryDelayMs, saysModelNotFound, type UpstreamFailure } from '../../src/domain/upstreamRetry.js';
import { replicaKey } from '../../src/common/replicas.js';

// ---- canonical ids -------------------------------------------------------------------------
const canonicalCases: Array<[string | undefined, Array<[string, string]>, { warnings?: number; errors?: number }?]> = [
  [undefined, []],
  ['', []],
  [' , ,', []],
  ['glm-5', [['glm-5', 'glm-5']]],
  ['glm-5=zai-org/GLM-5-FP8', [['glm-5', 'zai-org/GLM-5-FP8']]],
  [' a = x , b ', [['a', 'x'], ['b', 'b']]],
  ['a=b=c', [['a', 'b=c']]],
  ['qwen-3-5-122b=qwen/qwen3.5-122b', [['qwen-3-5-122b', 'qwen/qwen3.5-122b']]],
  ['a=x,a=y', [['a', 'x']], { warnings: 1 }],
  ['=x,y=', [], { errors: 2 }],
];
for (const [spec, entries, o] of canonicalCases) {
  test(`canonical ids: ${JSON.stringify(spec)}`, () => {
    const r = parseCanonicalMap(spec);
    assert.deepEqual(r.entries.map((e) => [e.canonical, e.slug]), entries);
    assert.equal(r.warnings.length, o?.warnings ?? 0);
    assert.equal(r.errors.length, o?.errors ?? 0);
  });
}

// ---- ordering -------------------------------------------------------------------------------
const NOW = 1_000_000_000;
/** A host with `failures` in a row, the last one `agoMs` before NOW. */
const host = (id: string, failures = 0, agoMs = 1_000): HostOffer => ({
  hostId: id,
  target: { kind: 'gguf', build: 'm', contextLength: 512 },
  consecutiveFailures: failures,
  ...(failures > 0 ? { lastFailureAt: NOW - agoMs } : {}),
});
const prov = (id: string, tier: 'attested' | 'plaintext', o: Partial<ProviderOffer> = {}): ProviderOffer => ({
  providerId: id,
  target: { kind: 'remote', build: `${id}/m`, upstreamModel: 'm', contextLength: 512 },
  tier,
  streaming: true,
  unusable: null,
  consecutiveFailures: 0,
  ...o,
});
const rank = (o: Partial<RankInput>) => rankReplicas({ hosts: [], providers: [], ownAttested: false, stream: false, demotion: { after: 10, retryAfterMs: 60_000 }, now: NOW, rotation: 0, ...o });
const order = (o: Partial<RankInput>) => rank(o).attempts.map((a) => replicaKey(a.replica));

const orderCases: Array<{ name: string; input: Partial<RankInput>; expect: string[] }> = [
  { name: 'own hosts first, attested next', input: { hosts: [host('h1'), host('h0')], providers: [prov('a', 'attested')] }, expect: ['host:h1', 'host:h0', 'provider:a'] },
  { name: 'plaintext only where nothing is attested', input: { hosts: [host('h0')], providers: [prov('p', 'plaintext')] }, expect: ['host:h0', 'provider:p'] },
  { name: 'an attested provider excludes plaintext ones (no downgrade)', input: { providers: [prov('p', 'plaintext'), prov('a', 'attested')] }, expect: ['provider:a'] },
  { name: 'an attested own fleet excludes plaintext ones', input: { hosts: [host('h0')], providers: [prov('p', 'plaintext')], ownAttested: true }, expect: ['host:h0'] },
  { name: 'an unconstructible attested provider still excludes plaintext (fails closed)', input: { providers: [prov('p', 'plaintext'), prov('a', 'attested', { unusable: 'no key' })] }, expect: [] },
  { name: 'a demoted host sorts after the next tier, not after every tier', input: { hosts: [host('h0', 10)], providers: [prov('a', 'attested')] }, expect: ['provider:a', 'host:h0'] },
  { name: 'a demoted host still comes before plaintext', input: { hosts: [host('h0', 12)], providers: [prov('p', 'plaintext')] }, expect: ['host:h0', 'provider:p'] },
  { name: 'below the threshold: not demoted', input: { hosts: [host('h0', 9)], providers: [prov('a', 'attested')] }, expect: ['host:h0', 'provider:a'] },
  { name: 'half open: a demoted host gets its place back once its last failure is old', input: { hosts: [host('h0', 30, 60_000)], providers: [prov('a', 'attested')] }, expect: ['host:h0', 'provider:a'] },
  { name: 'demoted until then', input: { hosts: [host('h0', 30, 59_999)], providers: [prov('a', 'attested')] }, expect: ['provider:a', 'host:h0'] },
  { name: 'demotion off (after 0)', input: { hosts: [host('h0', 30)], providers: [prov('a', 'attested')], demotion: { after: 0, retryAfterMs: 60_000 } }, expect: ['host:h0', 'provider:a'] },
  { name: 'rotation inside the leading provider group', input: { providers: [prov('a', 'plaintext'), prov('b', 'plaintext'), prov('c', 'plaintext')], rotation: 1 }, expect: ['provider:b', 'provider:c', 'provider:a'] },
  { name: 'rotation never crosses into the next tier', input: { providers: [prov('a', 'attested'), prov('b', 'attested'), prov('d', 'attested', { consecutiveFailures: 11, lastFailureAt: NOW })], rotation: 1 }, expect: ['provider:b', 'provider:a', 'provider:d'] },
  { name: 'no rotation over hosts (least busy order stays)', input: { hosts: [host('h1'), host('h0')], rotation: 1 }, expect: ['host:h1', 'host:h0'] },
  { name: 'a stream skips a provider that cannot stream when another can', input: { stream: true, providers: [prov('a', 'plaintext', { streaming: false }), prov('b', 'plaintext')] }, expect: ['provider:b'] },
  { name: 'a stream keeps non-streaming providers when none can (one-piece stream)', input: { stream: true, providers: [prov('a', 'plaintext', { streaming: false })] }, expect: ['provider:a'] },
  { name: 'tried replicas are left out', input: { hosts: [host('h0')], providers: [prov('a', 'attested')], exclude: ['host:h0'] }, expect: ['provider:a'] },
  { name: 'a disabled provider is skipped', input: { providers: [prov('a', 'plaintext', { unusable: 'disabled' }), prov('b', 'plaintext')] }, expect: ['provider:b'] },
];
for (const c of orderCases) test(`order: ${c.name}`, () => assert.deepEqual(order(c.input), c.expect));

test('order: skipped replicas say why, and an attested model reports refused plaintext', () => {
  const r = rank({ providers: [prov('p', 'plaintext'), prov('a', 'attested', { unusable: 'its key (A_KEY) is not set' })] });
  assert.deepEqual(r.skipped, [
    { replica: 'provider:p', why: 'plaintext provider: the model is attested and never downgrades' },
    { replica: 'provider:a', why: 'its key (A_KEY) is not set' },
  ]);
  assert.equal(r.attested, true);
  assert.equal(r.refusedPlaintext, true);
});

// ---- upstream failures ----------------------------------------------------------------------
const failureCases: Array<[string, UpstreamFailure, string, boolean]> = [
  ['connect refused', { kind: 'transport', category: 'connect' }, 'retry_same', true],
  ['timeout', { kind: 'transport', category: 'timeout' }, 'retry_same', true],
  ['connection dropped', { kind: 'transport', category: 'dropped' }, 'retry_same', true],
  ['TLS failure', { kind: 'transport', category: 'tls' }, 'retry_same', true],
  ['unreadable answer', { kind: 'transport', category: 'decode' }, 'next_replica', true],
  ['attested: the peer key is not pinned (another backend may be)', { kind: 'transport', category: 'unpinned' }, 'retry_same', true],
  ['attested: the signature did not verify', { kind: 'transport', category: 'verify' }, 'next_replica', true],
  ['500', { kind: 'http', status: 500 }, 'retry_same', true],
  ['503', { kind: 'http', status: 503 }, 'retry_same', true],
  ['429', { kind: 'http', status: 429, retryAfterSeconds: 1 }, 'retry_same', true],
  ['401: our key is wrong', { kind: 'http', status: 401 }, 'next_replica', true],
  ['402: the provider is out of credit (never passed on: no 402 to clients)', { kind: 'http', status: 402 }, 'next_replica', true],
  ['404 without "model": a wrong base URL', { kind: 'http', status: 404 }, 'next_replica', true],
  ['405', { kind: 'http', status: 405 }, 'next_replica', true],
  ['403', { kind: 'http', status: 403 }, 'next_replica', true],
  ['408', { kind: 'http', status: 408 }, 'next_replica', true],
  ['404 model not found: a stale catalog', { kind: 'http', status: 404, modelNotFound: true }, 'next_replica', false],
  ['400: the client is at fault', { kind: 'http', status: 400 }, 'client', false],
  ['422', { kind: 'http', status: 422 }, 'client', false],
];
for (const [name, f, verdict, counts] of failureCases) {
  test(`upstream failure: ${name} → ${verdict}${counts ? ', counts' : ''}`, () => assert.deepEqual(classifyUpstreamFailure(f), { verdict, counts }));
}

test('backoff: doubles and caps, honours Retry-After, gives up past the retries or a long Retry-After', () => {
  const connect: UpstreamFailure = { kind: 'transport', category: 'connect' };
  assert.deepEqual([1, 2, 3].map((n) => retryDelayMs(n, connect)), [250, 500, null]);
  assert.deepEqual([1, 2].map((n) => retryDelayMs(n, { kind: 'http', status: 429 })), [1000, 2000]);
  assert.equal(retryDelayMs(1, { kind: 'http', status: 429, retryAfterSeconds: 3 }), 3000);
  assert.equal(retryDelayMs(1, { kind: 'http', status: 503, retryAfterSeconds: 30 }), null);
  assert.equal(parseRetryAfter('2', 0), 2);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 5_000), 5);
  assert.equal(parseRetryAfter('soon', 0), undefined);
  assert.equal(saysModelNotFound(404, null, 'The model `x` does not exist'), true);
  assert.equal(saysModelNotFound(400, 'model_not_found', ''), true);
  assert.equal(saysModelNotFound(400, null, 'temperature must be ≤ 2'), false);
});

// ---- merge vs prune -------------------------------------------------------------------------
const build = (providerId: string, slug: string, o: Partial<RemoteBuild> = {}): RemoteBuild => ({
  id: remoteBuildId(providerId, slug),
  providerId,
  upstreamModel: slug,
  canonicalId: slug,
  active: true,
  origin: 'mapped',
  contextLength: 4096,
  ...o,
});
const spec = (providerId: string, mapping: string) => ({ providerId, mapping: parseCanonicalMap(mapping).entries, contextLength: 4096 });
const ok = (providerId: string, ...slugs: string[]) => ({ providerId, ok: true as const, models: slugs.map((slug) => ({ slug })) });
const failed = (providerId: string) => ({ providerId, ok: false as const, reason: 'connect' });
const base = { aliases: [], otherBuilds: new Set<string>() };

test('refresh: mapped models are active, listed-only ones are added inactive', () => {
  const plan = planRefresh({ ...base, current: [], providers: [spec('p', 'chat=vendor/chat-v1')], listings: [ok('p', 'vendor/chat-v1', 'vendor/other')], complete: true });
  assert.deepEqual(
    plan.upsert.map((b) => [b.id, b.canonicalId, b.active, b.origin]),
    [['p/vendor/chat-v1', 'chat', true, 'mapped'], ['p/vendor/other', 'vendor/other', false, 'discovered']],
  );
  assert.deepEqual(plan.aliases.create, [{ id: 'chat', desired: 'p/vendor/chat-v1' }], 'an inactive model gets no alias');
});

test('refresh: a partial batch merges and never removes, even what a provider stopped listing', () => {
  const current = [build('p', 'a'), build('q', 'b')];
  const plan = planRefresh({ ...base, current, providers: [spec('p', 'a'), spec('q', 'b')], listings: [ok('p'), failed('q')], complete: false });
  assert.deepEqual(plan.remove, []);
});

test('refresh: a complete refresh prunes what a provider no longer lists; an empty answer is a complete empty set', () => {
  const current = [build('p', 'a'), build('p', 'x', { origin: 'discovered', active: false }), build('q', 'y', { origin: 'discovered' }), build('q', 'b')];
  const plan = planRefresh({ ...base, current, providers: [spec('p', 'a'), spec('q', 'b')], listings: [ok('p', 'a'), ok('q')], complete: true });
  assert.deepEqual(plan.remove.sort(), ['p/x', 'q/y'], 'mapped models stay: the operator removes them');
});

test('refresh: an operator activation of a discovered model survives refreshes', () => {
  const current = [build('p', 'x', { origin: 'discovered', active: true })];
  const plan = planRefresh({ ...base, current, providers: [spec('p', '')], listings: [ok('p', 'x')], complete: true });
  assert.deepEqual(plan.upsert, []);
  assert.deepEqual(plan.remove, []);
});

test('refresh: a mapped entry the operator removed goes at once, even in a partial batch', () => {
  const plan = planRefresh({ ...base, current: [build('p', 'a'), build('p', 'b')], providers: [spec('p', 'a')], listings: [], complete: false });
  assert.deepEqual(plan.remove, ['p/b']);
});

test('refresh: an alias left with no provider is removed (404), not kept reserved', () => {
  const plan = planRefresh({
    ...base,
    current: [build('p', 'a')],
    providers: [spec('p', '')],
    listings: [ok('p')],
    complete: false,
    aliases: [{ id: 'a', desired: 'p/a', previous: null }],
  });
  assert.deepEqual(plan.aliases.remove, ['a']);
});

test('refresh: an alias whose build went is repointed to another provider serving the same id', () => {
  const plan = planRefresh({
    ...base,
    current: [build('p', 'a'), build('q', 'a')],
    providers: [spec('p', ''), spec('q', 'a')],
    listings: [],
    complete: false,
    aliases: [{ id: 'a', desired: 'p/a', previous: null }],
  });
  assert.deepEqual(plan.aliases.repoint, [{ id: 'a', desired: 'q/a', previous: null }]);
});

test('refresh: aliases of GGUF builds are never touched', () => {
  const plan = planRefresh({
    ...base,
    otherBuilds: new Set(['tiny']),
    current: [build('p', 'tiny', { origin: 'discovered' })],
    providers: [spec('p', '')],
    listings: [ok('p')],
    complete: true,
    aliases: [{ id: 'tiny', desired: 'tiny', previous: null }],
  });
  assert.deepEqual(plan.aliases, { create: [], repoint: [], remove: [] });
  assert.deepEqual(plan.remove, ['p/tiny']);
});
