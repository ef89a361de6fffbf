/**
 * What `npm test` (scripts/test.ts) started for the suite: the Temporal address and a
 * PostgreSQL server URL. A test file run on its own without them fails with a clear message.
 */
import { loadConfig, type FleetConfig } from '../../src/config.js';

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite with \`npm test\` (it starts Temporal and PostgreSQL)`);
  return v;
}

export const testEnv = {
  get temporalAddress(): string {
    return required('FLEET_TEST_TEMPORAL_ADDRESS');
  },
  get temporalCli(): string {
    return required('FLEET_TEST_TEMPORAL_CLI');
  },
  get databaseUrl(): string {
    return required('FLEET_TEST_DATABASE_URL');
  },
};

/** A config for a test stack: the suite's Temporal, the given database, quiet logs. */
export function testConfig(overrides: Record<string, string | undefined> = {}): FleetConfig {
  return loadConfig({
    TEMPORAL_ADDRESS: testEnv.temporalAddress,
    FLEET_LOG_LEVEL: process.env.FLEET_LOG_LEVEL ?? 'warn',
    FLEET_HEARTBEAT_INTERVAL_MS: '500',
    FLEET_PAYLOAD_KEYS: process.env.FLEET_PAYLOAD_KEYS,
    ...overrides,
  });
}
