/**
 * The provider worker: stateless, on the provider queue (`fleet.providers`), running `generate`
 * against remote providers and their model listings. Run as `fleet worker provider` (as many as
 * needed), and by default inside the control-plane process and `fleet dev`.
 */
import { Worker } from '@temporalio/worker';
import { createAttestedProviderActivities } from '../activities/attestedProvider.js';
import { createProviderActivities } from '../activities/provider.js';
import { quoteVerifierFrom } from '../attestation/fromConfig.js';
import type { QuoteVerifierConfig } from '../attestation/quoteVerifier.js';
import { PROVIDER_QUEUE } from '../common/taskQueues.js';
import type { DbHandle } from '../db/connect.js';
import type { Logger } from '../logger.js';
import { ProviderDirectory } from '../providers/directory.js';
import type { StreamChannel } from '../stream/channel.js';
import type { TemporalHandle } from '../temporal/connect.js';
import { runWorker, type RunningWorker } from './running.js';

export interface ProviderWorkerOptions {
  temporal: TemporalHandle;
  db: DbHandle;
  channel: StreamChannel;
  secrets: { get(name: string): string | undefined };
  /** How attested providers' quotes are verified. */
  quotes: QuoteVerifierConfig;
  log: Logger;
}

export async function startProviderWorker(o: ProviderWorkerOptions): Promise<RunningWorker> {
  const log = o.log.child({ worker: 'provider' });
  const directory = new ProviderDirectory(o.db.db, o.secrets);
  const worker = await Worker.create({
    connection: o.temporal.connection,
    namespace: o.temporal.namespace,
    dataConverter: o.temporal.dataConverter,
    taskQueue: PROVIDER_QUEUE,
    activities: {
      ...createProviderActivities({ directory, channel: o.channel, log }),
      ...createAttestedProviderActivities({ directory, verifier: quoteVerifierFrom(o.quotes, log), log }),
    },
    // Calls wait on the network, not the CPU: many may be in flight at once.
    maxConcurrentActivityTaskExecutions: 256,
    maxHeartbeatThrottleInterval: '1 second',
    shutdownGraceTime: '10 seconds',
  });
  const running = runWorker(worker, { log, name: 'provider', afterStop: () => directory.close() });
  log.info({ taskQueue: PROVIDER_QUEUE }, 'provider worker running');
  return running;
}
