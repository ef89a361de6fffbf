/**
 * bench/modelServer.ts — the upstream the proxy benchmark puts every gateway in front of, in a
 * process of its own: an OpenAI-compatible HTTP server (tests/support/faultUpstream.ts) that
 * either answers at once with a fixed text (`--mode instant`: pure proxy cost), or runs the
 * given GGUF with node-llama-cpp directly (`--mode model`: "the model server alone", the same
 * runtime and settings a GPU-host worker uses). Prints `listening <url>` when ready.
 *
 *   npx tsx bench/modelServer.ts --mode model --model path/to/tiny.gguf [--threads 1]
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { LlamaRuntime } from '../src/activities/llama/runtime.js';
import type { ChatMessage, InferenceInput } from '../src/common/inference.js';
import { defaultLlamaThreads } from '../src/config.js';
import { startFaultUpstream, type FaultUpstreamOptions } from '../tests/support/faultUpstream.js';

const { values: v } = parseArgs({ options: { mode: { type: 'string', default: 'instant' }, model: { type: 'string' }, threads: { type: 'string' } } });
const log = pino({ level: 'warn' }, pino.destination(2));

let generate: FaultUpstreamOptions['generate'];
if (v.mode === 'model') {
  if (!v.model) throw new Error('--mode model needs --model <file.gguf>');
  const rt = new LlamaRuntime({
    threads: v.threads ? Number(v.threads) : defaultLlamaThreads(),
    gpu: 'auto',
    admission: { maxInFlight: 4, maxQueue: 10_000, maxWaitMs: 600_000, perPrincipalCap: 0 },
    log,
  });
  await rt.load('m', v.model, 512);
  generate = async (body, onText) => {
    const input: InferenceInput = Array.isArray(body.messages)
      ? { kind: 'chat', messages: (body.messages as ChatMessage[]).map((m) => ({ role: m.role, content: String(m.content ?? '') })) }
      : { kind: 'completion', prompt: String(body.prompt ?? '') };
    const out = await rt.generate('m', {
      input,
      params: {
        maxTokens: typeof body.max_tokens === 'number' ? body.max_tokens : 16,
        temperature: typeof body.temperature === 'number' ? body.temperature : 1,
        topP: typeof body.top_p === 'number' ? body.top_p : 1,
        stop: [],
      },
      principal: null,
      onText,
    });
    return { text: out.text, promptTokens: out.usage.promptTokens, completionTokens: out.usage.completionTokens };
  };
}
const server = await startFaultUpstream(generate ? { generate } : {});
server.models = ['tiny'];
process.stdout.write(`listening ${server.url}\n`);
process.on('SIGTERM', () => void server.close().finally(() => process.exit(0)));
