/** The config module: defaults, parsing, and errors that name the variable. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, defaultLlamaThreads, loadConfig } from '../../src/config.js';

test('defaults are usable as they are', () => {
  const c = loadConfig({});
  assert.equal(c.temporal.address, undefined);
  assert.equal(c.temporal.namespace, 'default');
  assert.equal(c.http.port, 8080);
  assert.equal(c.requireAuth, false);
  assert.equal(c.databaseUrl, undefined);
  assert.ok(c.llama.threads >= 1);
});

test('values are parsed and empty strings count as unset', () => {
  const c = loadConfig({ FLEET_HTTP_PORT: '9000', FLEET_REQUIRE_AUTH: 'true', DATABASE_URL: '', TEMPORAL_ADDRESS: 'temporal:7233' });
  assert.equal(c.http.port, 9000);
  assert.equal(c.requireAuth, true);
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.temporal.address, 'temporal:7233');
});

const bad: Array<[Record<string, string>, RegExp]> = [
  [{ FLEET_HTTP_PORT: 'eighty' }, /FLEET_HTTP_PORT/],
  [{ FLEET_HTTP_PORT: '70000' }, /FLEET_HTTP_PORT/],
  [{ FLEET_REQUIRE_AUTH: 'maybe' }, /FLEET_REQUIRE_AUTH/],
  [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
  [{ TEMPORAL_ADDRESS: 'no port' }, /TEMPORAL_ADDRESS/],
  [{ FLEET_HOST_ID: 'bad id!' }, /FLEET_HOST_ID/],
  [{ FLEET_MAX_IN_FLIGHT: '0' }, /FLEET_MAX_IN_FLIGHT/],
  [{ FLEET_LOG_LEVEL: 'loud' }, /FLEET_LOG_LEVEL/],
  [{ FLEET_ADMIN_TOKEN: 'short' }, /FLEET_ADMIN_TOKEN/],
  [{ FLEET_RESERVATION_TTL_S: '60' }, /FLEET_RESERVATION_TTL_S/],
];
for (const [env, name] of bad) {
  test(`a bad ${Object.keys(env)[0]} fails fast, naming the variable`, () => {
    assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && name.test(e.message));
  });
}

test('a bad DATABASE_URL is reported without echoing its value (it may hold a password)', () => {
  assert.throws(
    () => loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db/x' }),
    (e: unknown) => e instanceof ConfigError && !e.message.includes('hunter2'),
  );
});

test('budgets: the request timeout is always shorter than the reservation TTL', () => {
  const d = loadConfig({});
  assert.equal(d.budgets.reservationTtlS, 900);
  assert.equal(d.adminToken, undefined);
  for (const ttl of ['120', '900', '86400']) {
    const b = loadConfig({ FLEET_RESERVATION_TTL_S: ttl }).budgets;
    assert.ok(b.requestTimeoutS > 0 && b.requestTimeoutS < b.reservationTtlS, ttl);
  }
});

test('a bad FLEET_ADMIN_TOKEN is reported without echoing it (it is a secret)', () => {
  assert.throws(
    () => loadConfig({ FLEET_ADMIN_TOKEN: 'has spaces in the secret value' }),
    (e: unknown) => e instanceof ConfigError && /FLEET_ADMIN_TOKEN/.test(e.message) && !e.message.includes('secret value'),
  );
});

test('llama threads fit the machine: 1 on 2 cores, half the cores above', () => {
  assert.equal(defaultLlamaThreads(1), 1);
  assert.equal(defaultLlamaThreads(2), 1);
  assert.equal(defaultLlamaThreads(8), 4);
});

test('FLEET_CONFIG: a YAML or JSON file of providers, validated with defaults', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fleet-config-'));
  const yaml = path.join(dir, 'fleet.yaml');
  writeFileSync(yaml, 'providers:\n  - id: up\n    base_url: https://api.example.com/v1/\n    api_key_env: UP_KEY\n    models: "glm-5=zai/GLM-5, llama"\n');
  const c = loadConfig({ FLEET_CONFIG: yaml, UP_KEY: 'secret-value' });
  assert.deepEqual(c.file!.providers.map((p) => [p.id, p.base_url, p.tier, p.streaming, p.timeouts.connect_ms]), [['up', 'https://api.example.com/v1', 'plaintext', true, 5000]]);
  assert.equal(c.secrets.get('UP_KEY'), 'secret-value', 'keys are read by name, from the same environment');
  const json = path.join(dir, 'fleet.json');
  writeFileSync(json, JSON.stringify({ providers: [{ id: 'a', base_url: 'https://a.tee.example.com/v1', tier: 'attested' }] }));
  assert.equal(loadConfig({ FLEET_CONFIG: json }).file!.providers[0]!.tier, 'attested');

  const badCases: Array<[string, RegExp]> = [
    ['providers:\n  - id: x\n    base_url: ftp://nope\n', /providers\.0\.base_url/],
    ['providers:\n  - id: x\n    base_url: https://u:p@host/v1\n', /must not carry credentials/],
    ['providers:\n  - id: x\n    base_url: https://h/v1\n    models: "=slug"\n', /providers\.0\.models/],
    ['providers:\n  - id: x\n    base_url: https://h/v1\n  - id: x\n    base_url: https://h/v1\n', /appears twice/],
    ['providers:\n  - id: x\n    base_url: https://h/v1\n    api_key: sk-inline\n', /Unrecognized key/],
    ['providers: [unclosed\n', /not valid YAML or JSON/],
    ['providers:\n  - id: x\n    base_url: http://x.tee.example.com/v1\n    tier: attested\n', /providers\.0\.base_url: an attested provider needs an https base_url/],
    ['providers:\n  - id: x\n    base_url: https://h/v1\n    transport: { resolve: { "*.h.example": "not-an-ip" } }\n', /providers\.0\.transport\.resolve/],
    ['providers:\n  - id: x\n    base_url: https://h/v1\n    discovery_interval_s: 5\n', /providers\.0\.discovery_interval_s/],
  ];
  for (const [text, err] of badCases) {
    writeFileSync(yaml, text);
    assert.throws(() => loadConfig({ FLEET_CONFIG: yaml }), (e: unknown) => e instanceof ConfigError && err.test(e.message) && !e.message.includes('sk-inline'), text);
  }
  assert.throws(() => loadConfig({ FLEET_CONFIG: path.join(dir, 'missing.yaml') }), /FLEET_CONFIG: cannot read/);
});

test('quote verification: DCAP by default; the software TEE only when allowed, with its key', () => {
  assert.deepEqual(loadConfig({}).providers.quotes, { kind: 'dcap', pccsUrl: 'https://api.trustedservices.intel.com', allowedTcbStatuses: ['UpToDate'] });
  assert.deepEqual(loadConfig({ FLEET_PCCS_URL: 'https://pccs.internal:8081', FLEET_TCB_ALLOWED: 'UpToDate,SWHardeningNeeded' }).providers.quotes, {
    kind: 'dcap',
    pccsUrl: 'https://pccs.internal:8081',
    allowedTcbStatuses: ['UpToDate', 'SWHardeningNeeded'],
  });
  const key = 'ab'.repeat(32);
  assert.deepEqual(loadConfig({ FLEET_ALLOW_SOFTWARE_TEE: 'true', FLEET_SOFTWARE_TEE_PUBLIC_KEY: key }).providers.quotes, { kind: 'software', publicKey: key });
  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ FLEET_SOFTWARE_TEE_PUBLIC_KEY: key }, /FLEET_SOFTWARE_TEE_PUBLIC_KEY: set, but FLEET_ALLOW_SOFTWARE_TEE is not true/],
    [{ FLEET_ALLOW_SOFTWARE_TEE: 'true' }, /FLEET_SOFTWARE_TEE_PUBLIC_KEY: required/],
    [{ FLEET_ALLOW_SOFTWARE_TEE: 'true', FLEET_SOFTWARE_TEE_PUBLIC_KEY: 'AB'.repeat(32) }, /FLEET_SOFTWARE_TEE_PUBLIC_KEY/],
    [{ FLEET_TCB_ALLOWED: 'UpToDate;OutOfDate' }, /FLEET_TCB_ALLOWED/],
    [{ FLEET_PCCS_URL: 'ftp://pccs' }, /FLEET_PCCS_URL/],
  ];
  for (const [env, err] of refused) assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && err.test(e.message), JSON.stringify(env));
});
