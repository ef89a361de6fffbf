// The probe load, run as a throw-away child process by probe.ts: load the model on the CPU
// (memory-mapped, no GPU memory taken from the worker), create a small context, and report.
// llama.cpp aborts the whole process on some malformed models (a GGML_ASSERT), so this runs
// where an abort costs a probe, not the GPU-host worker. Plain JavaScript on purpose: the
// child starts without a TypeScript loader, so a probe costs the load and little else.
//
// Output: one JSON line on stdout, {"ok":true,"ms":…} or {"ok":false,"message":…}; exit 0/1.
import { getLlama } from 'node-llama-cpp';

const [file] = process.argv.slice(2);
const started = Date.now();
try {
  const llama = await getLlama({ gpu: false, logLevel: 'error' });
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0, useMmap: true });
  const context = await model.createContext({ contextSize: Math.min(256, model.trainContextSize), sequences: 1, threads: 1 });
  await context.dispose();
  await model.dispose();
  process.stdout.write(`${JSON.stringify({ ok: true, ms: Date.now() - started })}\n`);
  process.exit(0);
} catch (err) {
  const message = String(err && err.message ? err.message : err).split('\n')[0].slice(0, 300);
  process.stdout.write(`${JSON.stringify({ ok: false, message })}\n`);
  process.exit(1);
}
