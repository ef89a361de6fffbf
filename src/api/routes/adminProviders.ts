/**
 * Provider endpoints: `GET /admin/providers` (with their models and failure counts),
 * `POST /admin/providers` (add, or replace one of the same id), `PATCH /admin/providers/:id`,
 * `DELETE /admin/providers/:id`, `POST /admin/providers/refresh` (list every provider's models
 * now and wait for the outcome), `POST /admin/providers/:id/models/:slug/discovery` (one
 * attested-provider discovery cycle now, answered with its outcome). Saving a provider merges its mapped models at once (a partial
 * batch) and starts a refresh of it; providers of the config file are changed in the file.
 * Answers never carry a key — only the name of the variable that holds it, and whether it is set.
 */
import { Router } from 'express';
import { PROVIDER_ID_PATTERN, providerPatchSchema, providerSpecSchema } from '../../providers/providerSpec.js';
import { deleteProvider, getProvider, listProviders, listRemoteBuilds, saveProvider, type ProviderRecord } from '../../db/providersRepo.js';
import { parseCanonicalMap } from '../../domain/canonicalIds.js';
import { listReplicaHealth } from '../../db/replicaHealthRepo.js';
import { isDemoted, type DemotionPolicy } from '../../domain/replicas.js';
import { startProviderRefresh } from '../../temporal/providerRefresh.js';
import { startAttestedDiscovery } from '../../temporal/attestedDiscovery.js';
import { ApiError, fromWorkflowFailure, invalidRequest } from '../errors.js';
import { parseOr400 } from '../schemas.js';
import type { AdminDeps } from './admin.js';

export interface ProviderRouteDeps extends AdminDeps {
  secrets: { get(name: string): string | undefined };
  demotion: DemotionPolicy;
}

const providerNotFound = (id: string) => new ApiError(404, `The provider '${id}' is not configured.`, 'invalid_request_error', 'provider_not_found', 'id');

export function adminProviderRoutes(deps: ProviderRouteDeps): Router {
  const r = Router();
  const view = async (p: ProviderRecord) => {
    const [builds, health] = await Promise.all([listRemoteBuilds(deps.db), listReplicaHealth(deps.db)]);
    const h = health.find((x) => x.replica === `provider:${p.id}`);
    return {
      id: p.id,
      object: 'provider',
      base_url: p.base_url,
      tier: p.tier,
      api_key_env: p.api_key_env,
      key_set: p.api_key_env ? deps.secrets.get(p.api_key_env) !== undefined : null,
      models: p.models,
      // What the model list does not mean as written (a canonical id twice: the first kept).
      warnings: parseCanonicalMap(p.models).warnings,
      streaming: p.streaming,
      e2ee: p.e2ee,
      enabled: p.enabled,
      context_length: p.context_length,
      timeouts: p.timeouts,
      transport: p.transport,
      discovery_interval_s: p.discovery_interval_s,
      source: p.source,
      consecutive_failures: h?.consecutive_failures ?? 0,
      demoted: isDemoted(
        h ? { consecutiveFailures: h.consecutive_failures, ...(h.last_failure_at ? { lastFailureAt: new Date(h.last_failure_at).getTime() } : {}) } : undefined,
        deps.demotion,
        Date.now(),
      ),
      last_error: h?.last_error ?? null,
      catalog: builds
        .filter((b) => b.providerId === p.id)
        .map((b) => ({ build: b.id, upstream_model: b.upstreamModel, canonical_id: b.canonicalId, active: b.active, origin: b.origin, context_length: b.contextLength })),
    };
  };
  const refreshSoon = (ids: string[]) =>
    startProviderRefresh(deps.client, { providerIds: ids }).catch((err: Error) => deps.log.warn({ err: err.message }, 'could not start a provider refresh'));

  r.get('/admin/providers', async (_req, res) => {
    res.json({ object: 'list', data: await Promise.all((await listProviders(deps.db)).map(view)) });
  });

  r.post('/admin/providers', async (req, res) => {
    const spec = parseOr400(providerSpecSchema, req.body ?? {});
    const existing = await getProvider(deps.db, spec.id);
    if (existing?.source === 'config') throw invalidRequest(`The provider '${spec.id}' comes from the config file (FLEET_CONFIG): change it there.`, 'id');
    const { record, created } = await saveProvider(deps.db, spec, 'admin');
    deps.catalog.invalidate();
    deps.log.info({ provider: record.id, tier: record.tier, created }, 'provider saved');
    await refreshSoon([record.id]);
    res.status(created ? 201 : 200).json(await view(record));
  });

  r.patch('/admin/providers/:id', async (req, res) => {
    const id = String(req.params.id);
    const existing = PROVIDER_ID_PATTERN.test(id) ? await getProvider(deps.db, id) : undefined;
    if (!existing) throw providerNotFound(id);
    if (existing.source === 'config') throw invalidRequest(`The provider '${id}' comes from the config file (FLEET_CONFIG): change it there.`, 'id');
    const body: unknown = req.body ?? {};
    parseOr400(providerPatchSchema, body); // each given field checked on its own, unknown ones refused
    // The fields given, as given: the parsed patch holds every field's default too, which would
    // reset whatever the request did not name.
    const { source: _source, createdAt: _created, updatedAt: _updated, ...current } = existing;
    const spec = parseOr400(providerSpecSchema, { ...current, ...(body as object), id });
    const { record } = await saveProvider(deps.db, spec, 'admin');
    deps.catalog.invalidate();
    await refreshSoon([id]);
    res.json(await view(record));
  });

  r.delete('/admin/providers/:id', async (req, res) => {
    const id = String(req.params.id);
    const existing = PROVIDER_ID_PATTERN.test(id) ? await getProvider(deps.db, id) : undefined;
    if (!existing) throw providerNotFound(id);
    if (existing.source === 'config') throw invalidRequest(`The provider '${id}' comes from the config file (FLEET_CONFIG): remove it there.`, 'id');
    await deleteProvider(deps.db, id);
    deps.catalog.invalidate();
    deps.log.info({ provider: id }, 'provider deleted');
    res.json({ id, object: 'provider', deleted: true });
  });

  r.post('/admin/providers/refresh', async (_req, res) => {
    const handle = await startProviderRefresh(deps.client);
    try {
      const outcome = await handle.result();
      deps.catalog.invalidate();
      res.json({ workflow_id: handle.workflowId, ...outcome });
    } catch (err) {
      throw fromWorkflowFailure(err, 'providers');
    }
  });

  r.post('/admin/providers/:id/models/:slug/discovery', async (req, res) => {
    const id = String(req.params.id);
    const slug = String(req.params.slug);
    const provider = await getProvider(deps.db, id);
    if (!provider) throw providerNotFound(id);
    if (provider.tier !== 'attested') throw invalidRequest(`The provider '${id}' is not attested: it has no discovery cycles.`, 'id');
    if (!(await listRemoteBuilds(deps.db)).some((b) => b.providerId === id && b.upstreamModel === slug)) {
      throw new ApiError(404, `The provider '${id}' has no model '${slug}'.`, 'invalid_request_error', 'model_not_found', 'model');
    }
    const handle = await startAttestedDiscovery(deps.client, { providerId: id, slug });
    try {
      res.json(await handle.result());
    } catch (err) {
      throw fromWorkflowFailure(err, slug);
    }
  });
  return r;
}
