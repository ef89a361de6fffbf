/**
 * GET /v1/models and GET /v1/models/:id, in the OpenAI list format, plus what clients need to
 * size a request (as llama-server and vLLM report it): the context length and the output limit
 * a request without max_tokens gets.
 */
import { Router } from 'express';
import { outputLimitOf } from '../../domain/budget.js';
import { modelNotFound } from '../errors.js';
import type { AliasEntry } from '../catalog.js';
import type { ApiDeps } from '../callExecutor.js';

const modelObject = (m: AliasEntry) => ({
  id: m.id,
  object: 'model',
  created: Math.floor(m.createdAt.getTime() / 1000),
  owned_by: 'inference-fleet',
  context_length: m.contextLength,
  max_output_tokens: outputLimitOf(m.contextLength),
});

export function modelRoutes(deps: ApiDeps): Router {
  const r = Router();
  r.get('/v1/models', async (_req, res) => {
    const models = [...(await deps.catalog.all()).values()].sort((a, b) => a.id.localeCompare(b.id));
    res.json({ object: 'list', data: models.map(modelObject) });
  });
  r.get('/v1/models/{*id}', async (req, res) => {
    const id = ([] as string[]).concat((req.params as { id: string | string[] }).id).join('/');
    const m = await deps.catalog.get(id);
    if (!m) throw modelNotFound(id);
    res.json(modelObject(m));
  });
  return r;
}
