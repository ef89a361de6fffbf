/**
 * `fleet discovery run | replay | rerun`: run one pin-set discovery cycle now, replay a
 * recorded cycle against the current workflow code, or re-run one with the same input — for
 * our own hosts' models (`discoveryCycle`) and attested providers' (`attestedDiscoveryCycle`).
 */
import { Command } from 'commander';
import http from 'node:http';
import { log } from '../logger.js';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import type { AttestedDiscoveryInput, AttestedDiscoveryOutcome, DiscoveryInput, DiscoveryOutcome } from '../common/discovery.js';
import { connectTemporal, type TemporalHandle } from '../temporal/connect.js';
import { payloadCodecFor } from '../temporal/payloadKeys.js';
import { startDiscoveryCycle } from '../temporal/discovery.js';
import { startAttestedDiscovery } from '../temporal/attestedDiscovery.js';
import { installTemporalLogging } from '../temporal/runtimeLogging.js';
import { WORKFLOWS_PATH } from '../workers/controlPlane.js';
import { CliError, config, apiBase, callApi, apiFailure, URL_OPTION } from './common.js';

export function registerDiscoveryCommands(program: Command): void {
  function renderOutcome(o: DiscoveryOutcome | AttestedDiscoveryOutcome): string {
    const list = (xs: string[]) => (xs.length ? xs.map((x) => x.slice(0, 16)).join(', ') : '-');
    const indices = 'indices' in o ? ` (indices ${o.indices.length ? `${o.indices[0]}–${o.indices[o.indices.length - 1]}` : 'none'})` : '';
    return [
      `${o.workflowId}: ${o.mode} (${o.transition}), backends ${o.backendCount ?? 'unknown'}${indices}`,
      `  pin set ${o.pinSet.state}: ${list(o.pinSet.fingerprints)}`,
      `  newly pinned: ${list(o.newlyPinned)}; evicted: ${list(o.evicted)}`,
      ...(o.reasons.length ? [`  reasons: ${o.reasons.join('; ')}`] : []),
      '',
    ].join('\n');
  }

  /** A Temporal connection for the commands that read histories: `--address`, else TEMPORAL_ADDRESS. */
  async function temporalFor(address: string | undefined): Promise<TemporalHandle> {
    const c = config();
    const addr = address ?? c.temporal.address;
    if (!addr) throw new CliError('TEMPORAL_ADDRESS (or --address) is required: the address of the Temporal server the fleet runs on', 2);
    installTemporalLogging(log); // the SDK's own logs (e.g. the replay worker's) through pino
    // The same keys as the fleet: histories hold encrypted payloads.
    return connectTemporal(addr, c.temporal.namespace, await payloadCodecFor(c, { generate: false, log }));
  }

  /** A workflow's full history; an unknown id is the user's error, said in one line. */
  async function historyOf(t: TemporalHandle, workflowId: string) {
    try {
      return await t.client.workflow.getHandle(workflowId).fetchHistory();
    } catch (err) {
      throw new CliError(`${workflowId}: cannot read its history: ${(err as Error).message}`, 1);
    }
  }

  const discovery = program.command('discovery').description('pin-set discovery cycles (attest every host, or every attested provider backend, serving a model)');
  discovery
    .command('run')
    .description('run one discovery cycle now and print its outcome (POST /admin/models/:id/discovery, or with --provider POST /admin/providers/:id/models/:slug/discovery)')
    .requiredOption('--model <id>', "the model (with --provider: the provider's slug for it)")
    .option('--provider <id>', 'an attested provider: attest its backends serving --model')
    .option(...URL_OPTION)
    .action(async (opts: { model: string; provider?: string; url?: string }) => {
      const base = apiBase(opts.url);
      const path = opts.provider
        ? `/admin/providers/${encodeURIComponent(opts.provider)}/models/${encodeURIComponent(opts.model)}/discovery`
        : `/admin/models/${encodeURIComponent(opts.model)}/discovery`;
      const { status, body } = await callApi('POST', base, path);
      if (status !== 200) throw apiFailure(status, body);
      process.stdout.write(renderOutcome(body as DiscoveryOutcome | AttestedDiscoveryOutcome));
    });
  discovery
    .command('replay <workflowId>')
    .description('replay a discovery cycle\'s recorded history against this build\'s workflow code; prints ok or the determinism error')
    .option('--address <host:port>', 'Temporal address (default TEMPORAL_ADDRESS)')
    .action(async (workflowId: string, opts: { address?: string }) => {
      const t = await temporalFor(opts.address);
      try {
        const history = await historyOf(t, workflowId);
        try {
          await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH, dataConverter: t.dataConverter }, history, workflowId);
        } catch (err) {
          throw new CliError(`${workflowId}: replay failed: ${(err as Error).message}`, 1);
        }
        process.stdout.write(`${workflowId}: ok (${history.events?.length ?? 0} events replayed)\n`);
      } finally {
        await t.close();
      }
    });
  discovery
    .command('rerun <workflowId>')
    .description('start a new discovery cycle with the input of an earlier one; prints both outcomes')
    .option('--address <host:port>', 'Temporal address (default TEMPORAL_ADDRESS)')
    .action(async (workflowId: string, opts: { address?: string }) => {
      const t = await temporalFor(opts.address);
      try {
        const old = t.client.workflow.getHandle(workflowId);
        const history = await historyOf(t, workflowId);
        const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
        const payload = started?.input?.payloads?.[0];
        if (!payload) throw new CliError(`${workflowId}: no workflow input in its history`, 1);
        const [decoded] = t.codec ? await t.codec.decode([payload]) : [payload];
        const type = started?.workflowType?.name;
        if (type !== 'discoveryCycle' && type !== 'attestedDiscoveryCycle') throw new CliError(`${workflowId}: a ${type ?? 'unknown'} workflow, not a discovery cycle`, 1);
        const before = await old.result().then(
          (o: DiscoveryOutcome | AttestedDiscoveryOutcome) => renderOutcome(o),
          (err: Error) => `${workflowId}: failed: ${err.message}\n`,
        );
        let after: string;
        if (type === 'attestedDiscoveryCycle') {
          const input = defaultPayloadConverter.fromPayload<AttestedDiscoveryInput>(decoded!);
          after = renderOutcome(await (await startAttestedDiscovery(t.client, { providerId: input.providerId, slug: input.slug })).result());
        } else {
          const input = defaultPayloadConverter.fromPayload<DiscoveryInput>(decoded!);
          after = renderOutcome(await (await startDiscoveryCycle(t.client, { modelId: input.modelId })).result());
        }
        process.stdout.write(`before:\n${before}after:\n${after}`);
      } finally {
        await t.close();
      }
    });

}
