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
