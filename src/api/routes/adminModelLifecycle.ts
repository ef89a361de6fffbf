/**
 * The end of a model's life on the fleet: unload it from a host (`fleet models unload`, the
 * `modelUnload` workflow, refused with 409 while requests run on it) and delete a build from
 * the catalog (`fleet models delete`, refused with 409 while an alias other than its own
 * points at it or a host holds it). Loading and registering are in admin.ts.
 */
import { Router } from 'express';
import { z } from 'zod';
import { HOST_ID_PATTERN, HOST_ID_RULE } from '../../config.js';
import { FailureType } from '../../common/failures.js';
import { getHost } from '../../db/hostsRepo.js';
import { deleteBuild } from '../../db/modelsRepo.js';
import { startModelUnload } from '../../temporal/coldLoadStarter.js';
import { deleteDiscoverySchedule } from '../../temporal/discovery.js';
import { ApiError, failureTypeOf, fromWorkflowFailure, hostNotFound, invalidRequest, modelNotFound } from '../errors.js';
import { parseOr400, registerModelBody } from '../schemas.js';
import type { AdminDeps } from './admin.js';

const unloadParams = z.object({
  host: z.string().regex(HOST_ID_PATTERN, HOST_ID_RULE),
  model: registerModelBody.shape.id,
});

const conflict = (message: string, code: string, param: string) => new ApiError(409, message, 'invalid_request_error', code, param);

export function adminModelLifecycleRoutes(deps: AdminDeps): Router {
  const r = Router();

  r.post('/admin/hosts/:hostId/models/:modelId/unload', async (req, res) => {
    const { host, model } = parseOr400(unloadParams, { host: req.params.hostId, model: req.params.modelId });
    const build = (await deps.catalog.resolveBuild(model))?.id;
    if (!build) throw modelNotFound(model);
    if (!(await getHost(deps.db, host))) throw hostNotFound(host);
    let result;
    try {
      result = await (await startModelUnload(deps.client, { hostId: host, modelId: build })).result();
    } catch (err) {
      if (failureTypeOf(err) === FailureType.ModelBusy) {
        throw conflict(`'${build}' is busy on host '${host}' (requests are running or queued, or it is loading): retry when it is idle.`, 'model_busy', 'model');
      }
      throw fromWorkflowFailure(err, build);
    }
    deps.log.info({ host, model: build, unloaded: result.unloaded }, 'operator unload done');
    res.json({ host: result.hostId, model: result.modelId, unloaded: result.unloaded });
  });

  r.delete('/admin/models/:modelId', async (req, res) => {
    const id = registerModelBody.shape.id.safeParse(req.params.modelId);
    if (!id.success) throw invalidRequest('The model id is malformed.', 'id');
    const out = await deleteBuild(deps.db, id.data);
    switch (out.kind) {
      case 'not_found':
        throw modelNotFound(id.data);
      case 'remote':
        throw invalidRequest(`'${id.data}' is a provider's model: it goes when the provider does (fleet providers remove).`, 'id');
      case 'aliased':
        throw conflict(
          `'${id.data}' is still served through ${out.aliases.map((a) => `'${a}'`).join(', ')}: point ${out.aliases.length > 1 ? 'them' : 'it'} at another build first (fleet models alias <alias> --desired <build> --no-previous).`,
          'model_in_use',
          'id',
        );
      case 'placed':
        throw conflict(
          `'${id.data}' is loaded on ${out.hosts.join(', ')}: unload it first (fleet models unload ${id.data} --host ${out.hosts[0]}).`,
          'model_loaded',
          'id',
        );
      case 'deleted':
        break;
    }
    deps.catalog.invalidate();
    if (out.verifiable) await deleteDiscoverySchedule(deps.client, id.data).catch((err: Error) => deps.log.warn({ model: id.data, err: err.message }, 'could not delete the discovery schedule'));
    deps.log.info({ model: id.data }, 'model deleted');
    res.json({ id: id.data, object: 'model', deleted: true });
  });
  return r;
}
