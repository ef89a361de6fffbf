/**
 * POST /v1/messages and POST /v1/messages/count_tokens in Anthropic's wire format: parse (the
 * wire format), resolve the alias, execute (the call executor) — the same path as the OpenAI
 * routes. `x-api-key` authenticates like a bearer key (src/api/auth.ts); `anthropic-version`
 * is accepted whatever its value (the format served is the 2023-06-01 one the SDKs speak).
 */
import { Router, type Request, type Response } from 'express';
import { principalFrom } from '../auth.js';
import { executeCall, type ApiDeps } from '../callExecutor.js';
import { aliasOr404 } from '../catalog.js';
import { withRequestFacts } from '../requestBody.js';
import { anthropicSink, countTokensSink, toAnthropicCall } from '../wire/anthropic.js';
import { countTokensBody, messagesBody } from '../wire/anthropicRequest.js';
import { parseJsonObject } from '../wire/openai.js';

/** Paths whose errors go out in Anthropic's envelope (the app's error middleware asks). */
export const isAnthropicPath = (path: string) => path === '/v1/messages' || path.startsWith('/v1/messages/');

export function messagesRoutes(deps: ApiDeps): Router {
  const r = Router();
  r.post('/v1/messages', async (req: Request, res: Response) => {
    const body = parseJsonObject(messagesBody, req.body);
    const model = await aliasOr404(deps.catalog, body.model);
    const prepared = toAnthropicCall(body, model, principalFrom(res));
    const call = withRequestFacts(req, prepared.call, body.metadata?.user_id);
    await executeCall(deps, call, anthropicSink(res, call, prepared.toolMode));
  });
  r.post('/v1/messages/count_tokens', async (req: Request, res: Response) => {
    const body = parseJsonObject(countTokensBody, req.body);
    const model = await aliasOr404(deps.catalog, body.model);
    const { call } = toAnthropicCall(body, model, principalFrom(res));
    await executeCall(deps, call, countTokensSink(res));
  });
  return r;
}
