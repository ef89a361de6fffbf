/**
 * Prefix-cache-aware routing through the real stack, 3 host processes: a host's sequence keeps
 * its last conversation and a follow-up turn reuses it (usage.prompt_tokens_details.cached_tokens;
 * the Anthropic split is checked in tests/e2e/apiSurface.test.ts); routing sends the turn to the host holding its prefix even when another is
 * as idle and sorts first; a busy holder is passed over for a free host; a session key keeps
 * turns together; a restarted host has lost its cache and serves without error.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import type OpenAI from 'openai';
import { conversationText, isOpeningTurn, prefixBlocks } from '../../src/common/prefixBlocks.js';
import { rendezvous } from '../../src/domain/prefixRouting.js';
import { getHost } from '../../src/db/hostsRepo.js';
import { getRequestLog } from '../../src/db/requestLogRepo.js';
import { startProcessFleet, type ProcessFleet } from '../support/processFleet.js';
import { waitFor } from '../support/wait.js';

type Msg = OpenAI.Chat.Completions.ChatCompletionMessageParam;
const HOSTS = ['h0', 'h1', 'h2'];
const SYSTEM = 'You are the fleet assistant. Answer briefly and stay on the topic of the fleet. '.repeat(8);
/** Half of it: room in the tiny model's 512 tokens for turns long enough to fill blocks of their own. */
const SHORT_SYSTEM = SYSTEM.slice(0, SYSTEM.length / 2);

async function servedBy(f: ProcessFleet, requestId: string): Promise<string | null | undefined> {
  return (await waitFor(() => getRequestLog(f.stack.db.db, requestId)))?.host_id;
}

/** The API routes by a digest of the session key, as callExecutor makes it. */
const sessionDigest = (session: string) => createHash('sha256').update(session).digest('hex').slice(0, 16);

/** A session key that rendezvous hashing sends to `host` among `among` (to place a request on a chosen idle host). */
function sessionPicking(host: string, among: readonly string[]): string {
  for (let i = 0; ; i++) {
    const d = sessionDigest(`pin-${host}-${i}`);
    if (among.every((h) => h === host || rendezvous(d, host) > rendezvous(d, h))) return `pin-${host}-${i}`;
  }
}

/** Waits until `host` advertises the conversation's last block (its heartbeat after the turn). */
async function holds(f: ProcessFleet, host: string, messages: Msg[], answer: string): Promise<void> {
  const chain = prefixBlocks(conversationText({ kind: 'chat', messages: messages.map((m) => ({ role: m.role as 'user', content: String(m.content) })) }, answer)!);
  const last = chain.at(-1)!;
  const ok = await waitFor(async () => ((await getHost(f.stack.db.db, host))?.stats.models.tiny?.prefixes?.includes(last) ? true : undefined), 20_000);
  assert.ok(ok, `${host} never advertised the conversation`);
}

/** Waits until the API's snapshot routes `messages` first to `want` (a load, prefix or live count it has read). */
async function snapshotRoutes(f: ProcessFleet, messages: Msg[], want: (host: string | undefined) => boolean, what: string, o: { session?: string } = {}): Promise<void> {
  const input = { kind: 'chat' as const, messages: messages.map((m) => ({ role: m.role as 'user', content: String(m.content) })) };
  const blocks = prefixBlocks(conversationText(input)!);
  const digest = o.session !== undefined ? { session: sessionDigest(o.session) } : {};
  const opening = isOpeningTurn(input) ? { opening: true } : {};
  const first = () => {
    const a = f.stack.fleet?.preRoute({ alias: 'tiny', requestId: 'probe', stream: false, prefix: { blocks, ...digest, ...opening } })?.attempts[0]?.replica;
    return a?.kind === 'host' ? a.hostId : undefined;
  };
  assert.ok(await waitFor(async () => (want(first()) ? true : undefined), 20_000), `${what}: the snapshot routes to ${first()}`);
}

describe('prefix-aware routing across 3 host processes', () => {
  let f: ProcessFleet;
  before(async () => {
    f = await startProcessFleet({
      hosts: 3,
      // One sequence per host: a gated request makes its host busy, and the sequence's content is what a turn reuses.
      hostEnv: { FLEET_MAX_IN_FLIGHT: '1', FLEET_MAX_QUEUE: '2', FLEET_ADMISSION_MAX_WAIT_MS: '300000' },
      // A holder one request busier than the least busy replica is passed over.
      stackEnv: { FLEET_PREFIX_MAX_LOAD_GAP: '0' },
    });
    await f.addModel('tiny', 'tiny', 3);
  });
  beforeEach(async () => {
    await f.reset({ models: { tiny: HOSTS } });
  });
  after(async () => {
    await f?.stop();
  });

  /** Turn 1 of a conversation on h2: h0 and h1 are held busy by gates meanwhile. */
  const busy = async (h: string) =>
    assert.ok(await waitFor(async () => ((await getHost(f.stack.db.db, h))?.stats.models.tiny?.running === 1 ? true : undefined), 20_000), `${h} never got busy`);

  /**
   * Holds h0 and h1 busy on gates (one at a time, each placed once the snapshot saw the previous;
   * a session key picks the host among the idle ones); returns their release.
   */
  async function holdH0H1(tag: string): Promise<() => Promise<void>> {
    const held: Promise<unknown>[] = [];
    for (const [i, h] of ['h0', 'h1'].entries()) {
      const session = sessionPicking(h, HOSTS.slice(i));
      await snapshotRoutes(f, [{ role: 'user', content: 'probe' }], (x) => x === h, `before holding ${h}`, { session });
      held.push(f.openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: f.gated(`${tag}-${i}`) }], max_tokens: 2 }, { headers: { 'x-session-id': session } }));
      await busy(h);
    }
    return async () => {
      for (let i = 0; i < held.length; i++) await f.release(`${tag}-${i}`);
      await Promise.all(held);
    };
  }

  async function firstTurnOnH2(tag: string): Promise<{ messages: Msg[]; answer: string }> {
    const release = await holdH0H1(tag);
    const messages: Msg[] = [{ role: 'system', content: SYSTEM }, { role: 'user', content: `${tag}: what is a fleet?` }];
    await snapshotRoutes(f, messages, (h) => h === 'h2', 'with h0 and h1 busy');
    const r1 = await f.openai.chat.completions.create({ model: 'tiny', messages, max_tokens: 12, temperature: 0 });
    assert.equal(await servedBy(f, r1.id), 'h2');
    await release();
    const answer = r1.choices[0]!.message.content ?? '';
    await holds(f, 'h2', messages, answer);
    return { messages, answer };
  }

  // First in the file: every host starts with no live sequence.
  test('new conversations sharing a system prompt spread over the hosts with free sequences; each next turn finds its own host', async () => {
    const convs: Array<{ messages: Msg[]; host: string; promptTokens: number }> = [];
    for (const tag of ['x', 'y', 'z']) {
      // Long enough to fill blocks of its own (a conversation is told apart by full blocks only).
      const messages: Msg[] = [{ role: 'system', content: SHORT_SYSTEM }, { role: 'user', content: `${tag}: ${'what does a fleet do? '.repeat(6)}` }];
      // The opening turn avoids the hosts whose sequence a live conversation holds, though they hold the system prompt.
      const taken = convs.map((c) => c.host);
      await snapshotRoutes(f, messages, (h) => h !== undefined && !taken.includes(h), `opening turn ${tag}`);
      const r = await f.openai.chat.completions.create({ model: 'tiny', messages, max_tokens: 8, temperature: 0 });
      const host = (await servedBy(f, r.id))!;
      assert.ok(!taken.includes(host), `${tag} went to ${host}, which holds ${taken.indexOf(host)}`);
      const answer = r.choices[0]!.message.content ?? '';
      await holds(f, host, messages, answer);
      convs.push({ messages: [...messages, { role: 'assistant', content: answer }], host, promptTokens: r.usage!.prompt_tokens });
    }
    assert.deepEqual(convs.map((c) => c.host).sort(), HOSTS);
    for (const c of convs) {
      const turn2: Msg[] = [...c.messages, { role: 'user', content: 'and then?' }];
      await snapshotRoutes(f, turn2, (h) => h === c.host, `turn 2 on ${c.host}`);
      const r = await f.openai.chat.completions.create({ model: 'tiny', messages: turn2, max_tokens: 4, temperature: 0 });
      assert.equal(await servedBy(f, r.id), c.host);
      const cached = r.usage?.prompt_tokens_details?.cached_tokens ?? 0;
      assert.ok(cached >= c.promptTokens - 2, `turn 2 on ${c.host} reused ${cached} tokens; turn 1's prompt was ${c.promptTokens}`);
    }
  });

  test("a conversation's next turn goes to the host holding its prefix and reuses it (cached_tokens)", async () => {
    const { messages, answer } = await firstTurnOnH2('turns');
    const turn2: Msg[] = [...messages, { role: 'assistant', content: answer }, { role: 'user', content: 'and how does it route?' }];
    // Every host idle: by load alone h0 would serve (ties by id).
    await snapshotRoutes(f, turn2, (h) => h === 'h2', 'turn 2');
    const r2 = await f.openai.chat.completions.create({ model: 'tiny', messages: turn2, max_tokens: 8, temperature: 0 });
    assert.equal(await servedBy(f, r2.id), 'h2');
    const cached = r2.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    assert.ok(cached > 0 && cached < r2.usage!.prompt_tokens, `cached ${cached} of ${r2.usage?.prompt_tokens}`);
  });

  test('a busy holder is passed over for a free host', async () => {
    const { messages, answer } = await firstTurnOnH2('busy');
    const turn2: Msg[] = [...messages, { role: 'assistant', content: answer }, { role: 'user', content: 'and then?' }];
    // A request of the same conversation holds h2 (routed there for its prefix) on a gate.
    const held = f.openai.chat.completions.create({ model: 'tiny', messages: [...turn2.slice(0, -1), { role: 'user', content: f.gated('busy-holder') }], max_tokens: 2 });
    await busy('h2');
    await snapshotRoutes(f, turn2, (h) => h !== undefined && h !== 'h2', 'with the holder busy');
    const r2 = await f.openai.chat.completions.create({ model: 'tiny', messages: turn2, max_tokens: 4, temperature: 0 });
    assert.notEqual(await servedBy(f, r2.id), 'h2');
    await f.release('busy-holder');
    await held;
  });

  test('a session key (x-session-id, or prompt_cache_key) keeps turns on one host without a shared prefix; a malformed one is refused', async () => {
    const ask = async (content: string) => {
      const res = await fetch(`${f.apiUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-session-id': 'session-42' },
        body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 2 }),
      });
      assert.equal(res.status, 200);
      return servedBy(f, ((await res.json()) as { id: string }).id);
    };
    const first = await ask('one');
    for (const q of ['two', 'three', 'four']) {
      // Once the snapshot has seen the last turn end, the session's host is idle again.
      await snapshotRoutes(f, [{ role: 'user', content: q }], (h) => h === first, `session turn ${q}`, { session: 'session-42' });
      assert.equal(await ask(q), first);
    }
    // OpenAI's prompt_cache_key is a session key too (no header).
    const byKey = async (content: string) => {
      const r = await f.openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: 2, prompt_cache_key: 'session-42' });
      return servedBy(f, r.id);
    };
    await snapshotRoutes(f, [{ role: 'user', content: 'five' }], (h) => h === first, 'prompt_cache_key turn', { session: 'session-42' });
    assert.equal(await byKey('five'), first);
    const bad = await fetch(`${f.apiUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-session-id': 'x'.repeat(300) },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'x-session-id');
  });

  test('a host with a free sequence keeps a live conversation when a new one sharing its system prompt arrives', async () => {
    // h2 with two sequences; h0 and h1 held busy, so every turn goes to h2.
    await f.kill('h2', 'SIGTERM');
    await f.startHost('h2', { FLEET_MAX_IN_FLIGHT: '2' });
    await f.load('h2', 'tiny');
    const release = await holdH0H1('keep');
    try {
      const ask = async (messages: Msg[]) => {
        await snapshotRoutes(f, messages, (h) => h === 'h2', 'with h0 and h1 busy');
        const r = await f.openai.chat.completions.create({ model: 'tiny', messages, max_tokens: 8, temperature: 0 });
        assert.equal(await servedBy(f, r.id), 'h2');
        return r;
      };
      const a: Msg[] = [{ role: 'system', content: SHORT_SYSTEM }, { role: 'user', content: `a: ${'tell me how the fleet routes a request. '.repeat(3)}` }];
      const a1 = await ask(a);
      // b shares the system prompt with a's sequence; the other sequence is empty: b takes the empty one.
      const b1 = await ask([{ role: 'system', content: SHORT_SYSTEM }, { role: 'user', content: 'b: something else' }]);
      assert.equal(b1.usage?.prompt_tokens_details?.cached_tokens ?? 0, 0, 'b was evaluated in the empty sequence');
      const a2 = await ask([...a, { role: 'assistant', content: a1.choices[0]!.message.content ?? '' }, { role: 'user', content: 'and then?' }]);
      const cached = a2.usage?.prompt_tokens_details?.cached_tokens ?? 0;
      assert.ok(cached >= a1.usage!.prompt_tokens - 2, `a's turn 2 reused ${cached} tokens; its turn 1's prompt was ${a1.usage!.prompt_tokens}`);
    } finally {
      await release();
    }
  });

  test('a restarted holder has lost its cache: the next turn is served without error', async () => {
    const { messages, answer } = await firstTurnOnH2('restart');
    await f.kill('h2');
    await f.startHost('h2');
    await f.load('h2', 'tiny');
    const turn2: Msg[] = [...messages, { role: 'assistant', content: answer }, { role: 'user', content: 'still there?' }];
    const r2 = await f.openai.chat.completions.create({ model: 'tiny', messages: turn2, max_tokens: 4, temperature: 0 });
    assert.ok((r2.choices[0]!.message.content ?? '').length >= 0);
    const host = await servedBy(f, r2.id);
    assert.ok(host && HOSTS.includes(host));
    if (host === 'h2') assert.equal(r2.usage?.prompt_tokens_details?.cached_tokens ?? 0, 0, 'a fresh sequence holds nothing');
  });
});
