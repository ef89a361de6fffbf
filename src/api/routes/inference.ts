/**
 * POST /v1/chat/completions, /v1/completions, /v1/responses and /v1/embeddings in the OpenAI wire formats: parse (the
 * wire format), resolve the alias, execute (the call executor). No routing, generation or
 * budget logic lives here.
 */
import { Router, type Request, type Response } from 'express';
import { principalFrom } from '../auth.js';
import { executeCall, type ApiDeps } from '../callExecutor.js';
import { aliasOr404 } from '../catalog.js';
import { requestBodySha256, withRequestFacts } from '../requestBody.js';
import { openAiSink, parseChat, parseCompletion, parseJsonObject, toCall, type ParsedOpenAiCall } from '../wire/openai.js';
import { responsesSink, toResponsesCall } from '../wire/responses.js';
import { embeddingsBody, embeddingsSink, toEmbeddingCall } from '../wire/embeddings.js';
import { responsesBody } from '../wire/responsesRequest.js';

async function serve(deps: ApiDeps, req: Request, res: Response, parsed: ParsedOpenAiCall): Promise<void> {
  const model = await aliasOr404(deps.catalog, parsed.model);
  const prepared = toCall(parsed, model, principalFrom(res));
  const body = parsed.body.kind === 'chat' ? parsed.body.chat : parsed.body.completion;
  const call = withRequestFacts(req, prepared.call, body.prompt_cache_key ?? body.user);
  await executeCall(deps, call, openAiSink(res, call, { includeUsage: parsed.includeUsage, toolMode: prepared.toolMode }));
}

export function inferenceRoutes(deps: ApiDeps): Router {
  const r = Router();
  r.post('/v1/chat/completions', (req: Request, res: Response) => serve(deps, req, res, parseChat(req.body)));
  r.post('/v1/completions', (req: Request, res: Response) => serve(deps, req, res, parseCompletion(req.body)));
  r.post('/v1/embeddings', async (req: Request, res: Response) => {
    const body = parseJsonObject(embeddingsBody, req.body);
    const model = await aliasOr404(deps.catalog, body.model);
    const call = { ...toEmbeddingCall(body, model, principalFrom(res)), requestSha256: requestBodySha256(req) };
    await executeCall(deps, call, embeddingsSink(res, call, body.encoding_format ?? 'float'));
  });
  r.post('/v1/responses', async (req: Request, res: Response) => {
    const body = parseJsonObject(responsesBody, req.body);
    const model = await aliasOr404(deps.catalog, body.model);
    const prepared = toResponsesCall(body, model, principalFrom(res));
    const call = withRequestFacts(req, prepared.call, body.prompt_cache_key ?? body.user);
    await executeCall(deps, call, responsesSink(res, call, body, prepared.toolMode));
  });
  return r;
}
