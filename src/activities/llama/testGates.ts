/**
 * Test gates: a generation whose prompt carries `⟦gate:NAME⟧` takes its slot and then waits,
 * holding the host busy, until a file `NAME` appears in the gates folder. Tests on a slow,
 * busy machine cannot rely on a long generation still running when they look (an 1800-token
 * answer finished early on a fast box and late on a loaded one); a gate makes "this host is
 * running one request and queueing another" a state the test sets and ends, not a race.
 *
 * Only active when a host is started with FLEET_TEST_GATES_DIR (the worker warns at start);
 * without it the marker is ordinary text. The wait honours the request's abort signal.
 */
import { mkdirSync, watch } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { InferenceInput } from '../../common/inference.js';

const GATE = /⟦gate:([a-z0-9][a-z0-9-]{0,62})⟧/;

/** The marker that names gate `name` in a prompt (tests build prompts with it). */
export const gateMarker = (name: string): string => `⟦gate:${name}⟧`;

/** The gate a request names, if any. */
export function gateOf(input: InferenceInput): string | undefined {
  const texts = input.kind === 'completion' ? [input.prompt] : input.kind === 'embedding' ? input.inputs.filter((x) => typeof x === 'string') : input.messages.map((m) => m.content);
  for (const t of texts) {
    const m = GATE.exec(t);
    if (m) return m[1];
  }
  return undefined;
}

export interface TestGates {
  /** Resolves when the gate is open (its file exists); rejects when `signal` aborts. */
  wait(name: string, signal: AbortSignal): Promise<void>;
}

export function createTestGates(dir: string): TestGates {
  mkdirSync(dir, { recursive: true });
  const exists = (name: string) => access(path.join(dir, name)).then(() => true, () => false);
  return {
    async wait(name, signal) {
      if (await exists(name)) return;
      await new Promise<void>((resolve, reject) => {
        // Watch first, then check: a file created between the two is seen by one of them.
        const watcher = watch(dir, () => void exists(name).then((open) => open && done()));
        const onAbort = () => done(new Error('gate wait aborted'));
        const done = (err?: Error) => {
          watcher.close();
          signal.removeEventListener('abort', onAbort);
          if (err) reject(err);
          else resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        if (signal.aborted) return onAbort();
        void exists(name).then((open) => open && done());
      });
    },
  };
}
