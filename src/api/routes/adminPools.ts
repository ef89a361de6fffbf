/**
 * Pool endpoints: `GET /admin/pools` (per alias: hosts, loaded, busy, queued, capacity left —
 * what `fleet pools` prints), `POST /admin/pools/:alias/hosts` (move a host into the pool
 * through the `poolReassign` workflow; refused with 409 and the reason when the host is not
 * idle) and `POST /admin/pools/plan` (run the warm-pool planner now and return what it did).
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { Router } from 'express';
import { poolReassignWorkflowId } from '../../common/pools.js';
import { getHost } from '../../db/hostsRepo.js';
import { readPoolsOverview } from '../../db/poolsOverview.js';
import { startPoolReassign, startWarmPoolsNow } from '../../temporal/poolStarters.js';
import { ApiError, fromWorkflowFailure, hostNotFound, modelNotFound } from '../errors.js';
import { modelIdSchema, parseOr400, poolMoveBody } from '../schemas.js';
import { listQuarantined } from '../../db/modelsRepo.js';
import { snakeQuarantine, type AdminDeps } from './admin.js';

const snake = (p: Awaited<ReturnType<typeof readPoolsOverview>>['pools'][number]) => ({
  alias: p.alias,
  desired: p.desired,
  previous: p.previous,
  min_warm: p.minWarm,
  hosts: p.hosts,
  healthy: p.healthy,
  loaded: p.loaded,
  desired_loaded: p.desiredLoaded,
  busy: p.running,
  queued: p.queued,
  capacity_left: p.capacityLeft,
});

export function adminPoolRoutes(deps: AdminDeps): Router {
  const r = Router();

  r.get('/admin/pools', async (_req, res) => {
    const [o, quarantined] = await Promise.all([
      readPoolsOverview(deps.db, { ...deps.pools, heartbeatIntervalMs: deps.heartbeatIntervalMs }),
      listQuarantined(deps.db),
    ]);
    const q = new Set(quarantined.map((b) => b.id));
    res.json({
      object: 'list',
      enabled: o.enabled,
      unassigned: o.unassigned,
      moving: o.moving,
      quarantined: quarantined.map(snakeQuarantine),
      data: o.pools.map((p) => ({ ...snake(p), quarantined: [p.desired, ...(p.previous ? [p.previous] : [])].filter((b) => q.has(b)) })),
    });
  });

  r.post('/admin/pools/plan', async (_req, res) => {
    const handle = await startWarmPoolsNow(deps.client);
    res.json({ workflow_id: handle.workflowId, ...(await handle.result()) });
  });

  r.post('/admin/pools/:alias/hosts', async (req, res) => {
    const alias = modelIdSchema.safeParse(req.params.alias);
    if (!alias.success || !(await deps.catalog.get(alias.data))) throw modelNotFound(String(req.params.alias));
    const body = parseOr400(poolMoveBody, req.body ?? {});
    if (!(await getHost(deps.db, body.host))) throw hostNotFound(body.host);
    if (!deps.pools.enabled) {
      throw new ApiError(409, 'Model pools are off (FLEET_MODEL_POOLS=false): every host serves every model.', 'invalid_request_error', 'pools_disabled');
    }
    let handle;
    try {
      handle = await startPoolReassign(deps.client, { hostId: body.host, toAlias: alias.data, reason: 'operator' }, false);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new ApiError(409, `Host '${body.host}' is already being reassigned (${poolReassignWorkflowId(body.host)}).`, 'invalid_request_error', 'host_moving', 'host');
      }
      throw err;
    }
    deps.log.info({ host: body.host, alias: alias.data, workflowId: handle.workflowId }, 'operator pool move started');
    if (!body.wait) {
      res.status(202).json({ workflow_id: handle.workflowId, host: body.host, alias: alias.data });
      return;
    }
    let result;
    try {
      result = await handle.result();
    } catch (err) {
      throw fromWorkflowFailure(err, alias.data);
    }
    res.json({
      workflow_id: handle.workflowId,
      host: result.hostId,
      from: result.fromAlias,
      alias: result.toAlias,
      build: result.build,
      unloaded: result.unloaded,
    });
  });
  return r;
}
