/** Table tests of the prefix-aware replica order and of the conversation block chains (pure). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { advertisedBlocks, conversationText, isOpeningTurn, PREFIX_BLOCK_CHARS, prefixBlocks } from '../../src/common/prefixBlocks.js';
import type { HostView } from '../../src/domain/fleetView.js';
import { withLocalFacts } from '../../src/domain/localFacts.js';
import { chooseBackend, DEFAULT_PREFIX_POLICY, ewma, pickSequence, rankReplicas, rendezvous, reusedBlocks, LIVE_SEQUENCE_MS, type ReplicaCandidate } from '../../src/domain/prefixRouting.js';

const chain = ['b1', 'b2', 'b3', 'b4', 'b5'];
const c = (id: string, busy: number, held?: string[], live?: number, sequences?: number): ReplicaCandidate => ({
  id,
  busy,
  ...(held ? { held } : {}),
  ...(live !== undefined ? { live } : {}),
  ...(sequences !== undefined ? { sequences } : {}),
});

test('reused blocks: the longest held prefix of the chain', () => {
  const rows: Array<[string[] | undefined, number]> = [
    [undefined, 0],
    [[], 0],
    [['x'], 0],
    [['b1'], 1],
    [['b1', 'b2', 'b3'], 3],
    [['b3'], 3], // chained: holding block 3 means holding 1..3
    [['b1', 'b4', 'zz'], 4],
    [['b5', 'b1'], 5],
  ];
  for (const [held, want] of rows) assert.equal(reusedBlocks(chain, held), want, JSON.stringify(held));
});

test('replica order: longest prefix first unless markedly busier; then fewer live sequences, least busy, id', () => {
  const p = { blocks: chain };
  const rows: Array<{ name: string; candidates: ReplicaCandidate[]; want: string[]; session?: string; opening?: boolean; policy?: Partial<typeof DEFAULT_PREFIX_POLICY> }> = [
    { name: 'no holder: least busy, then id', candidates: [c('b', 0), c('a', 0), c('c', 1)], want: ['a', 'b', 'c'] },
    { name: 'the holder goes first though busier', candidates: [c('a', 0), c('b', 2, ['b4'])], want: ['b', 'a'] },
    { name: 'a markedly busier holder does not', candidates: [c('a', 0), c('b', 3, ['b4'])], want: ['a', 'b'] },
    { name: 'a markedly busier holder with a free sequence does', candidates: [c('a', 0), c('b', 3, ['b4'], 4, 4)], want: ['b', 'a'] },
    { name: 'a markedly busier holder with every sequence taken does not', candidates: [c('a', 0, [], 0, 4), c('b', 4, ['b4'], 4, 4)], want: ['a', 'b'] },
    { name: 'a free-sequence holder beyond the gap: the longer prefix first', candidates: [c('a', 0, ['b1'], 0, 4), c('b', 3, ['b4'], 3, 4), c('c', 1, [], 0, 4)], want: ['b', 'a', 'c'] },
    { name: 'equal prefixes: a close holder before a free-sequence one beyond the gap', candidates: [c('b', 0, ['b1'], 4, 4), c('a', 3, ['b1'], 3, 4)], want: ['b', 'a'] },
    { name: 'a free-sequence holder beyond the gap before close non-holders, busier ones last', candidates: [c('a', 0, [], 0, 4), c('b', 3, ['b2'], 3, 4), c('c', 5, [], 0, 8)], want: ['b', 'a', 'c'] },
    { name: 'longest prefix among holders', candidates: [c('a', 0, ['b1']), c('b', 1, ['b3']), c('c', 0)], want: ['b', 'a', 'c'] },
    { name: 'equal prefixes: least busy, then id', candidates: [c('b', 1, ['b2']), c('a', 1, ['b2']), c('c', 0, ['b2'])], want: ['c', 'a', 'b'] },
    { name: 'minBlocks: a short match does not count', candidates: [c('a', 0), c('b', 1, ['b1'])], want: ['a', 'b'], policy: { minBlocks: 2 } },
    { name: 'disabled: least busy only', candidates: [c('a', 0), c('b', 1, ['b5'])], want: ['a', 'b'], policy: { enabled: false } },
    { name: 'a bigger gap allowed', candidates: [c('a', 0), c('b', 5, ['b5'])], want: ['b', 'a'], policy: { maxLoadGap: 5 } },
    { name: 'one candidate', candidates: [c('a', 9)], want: ['a'] },
    { name: 'no holder, equal load: fewer live sequences first', candidates: [c('a', 0, [], 3), c('b', 0, [], 1), c('c', 0, [], 2)], want: ['b', 'c', 'a'] },
    { name: 'within the gap, fewer live before less busy', candidates: [c('a', 2, [], 0), c('b', 0, [], 4)], want: ['a', 'b'] },
    { name: 'beyond the gap, load decides', candidates: [c('a', 3, [], 0), c('b', 0, [], 4), c('c', 1, [], 4)], want: ['b', 'c', 'a'] },
    { name: 'a prefix every host holds (a shared system prompt): fewer live first', candidates: [c('a', 0, ['b1'], 4), c('b', 0, ['b1'], 2), c('c', 0, ['b1'], 4)], want: ['b', 'a', 'c'] },
    { name: 'the longer prefix beats fewer live', candidates: [c('a', 0, ['b1'], 0), c('b', 0, ['b2'], 4)], want: ['b', 'a'] },
    { name: 'equal live: id', candidates: [c('b', 0, [], 2), c('a', 0, [], 2)], want: ['a', 'b'] },
    { name: 'disabled: live ignored', candidates: [c('a', 0, [], 4), c('b', 0, [], 0)], want: ['a', 'b'], policy: { enabled: false } },
    { name: 'an opening turn: fewer live before the only holder of a shared prefix', candidates: [c('a', 0, ['b3'], 4), c('b', 0, [], 1)], want: ['b', 'a'], opening: true },
    { name: 'an opening turn, equal live: the longer match', candidates: [c('a', 0, ['b1'], 2), c('b', 0, ['b3'], 2), c('c', 0, [], 2)], want: ['b', 'a', 'c'], opening: true },
    { name: 'an opening turn: minBlocks still applies to the match', candidates: [c('b', 0, ['b1'], 2), c('a', 0, [], 2)], want: ['a', 'b'], opening: true, policy: { minBlocks: 2 } },
    { name: 'an opening turn: a holder beyond the gap stays last', candidates: [c('a', 3, ['b5'], 0), c('b', 0, [], 4)], want: ['b', 'a'], opening: true },
    { name: 'an opening turn: a free sequence beyond the gap does not count', candidates: [c('a', 3, ['b5'], 0, 4), c('b', 0, [], 4, 4)], want: ['b', 'a'], opening: true },
    { name: 'not an opening turn: the holder first though warmer', candidates: [c('a', 0, ['b3'], 4), c('b', 0, [], 1)], want: ['a', 'b'] },
  ];
  for (const r of rows) {
    assert.deepEqual(rankReplicas(r.candidates, { ...p, ...(r.session ? { session: r.session } : {}), ...(r.opening ? { opening: true } : {}) }, { ...DEFAULT_PREFIX_POLICY, ...r.policy }), r.want, r.name);
  }
  assert.deepEqual(rankReplicas([c('b', 0), c('a', 1, ['b5'])], undefined, DEFAULT_PREFIX_POLICY), ['b', 'a'], 'no prefix: least busy');
});

test('session affinity: with no holder, the same session meets the same close replica; a busy one is passed over', () => {
  const hosts = [c('h0', 0), c('h1', 0), c('h2', 0)];
  const pick = (session: string, hs = hosts) => rankReplicas(hs, { blocks: [], session }, DEFAULT_PREFIX_POLICY)[0];
  const sessions = Array.from({ length: 30 }, (_, i) => `s${i}`);
  for (const s of sessions) {
    assert.equal(pick(s), pick(s), 'deterministic');
    const want = hosts.reduce((best, h) => (rendezvous(s, h.id) > rendezvous(s, best.id) ? h : best)).id;
    assert.equal(pick(s), want);
  }
  assert.ok(new Set(sessions.map((s) => pick(s))).size > 1, 'sessions spread over the replicas');
  // The session's replica, markedly busier than the least busy, is not chosen.
  const s = sessions[0]!;
  const home = pick(s)!;
  const loaded = hosts.map((h) => (h.id === home ? c(h.id, 3) : h));
  assert.notEqual(pick(s, loaded), home);
  // A prefix holder beats the session's replica.
  const holder = hosts.find((h) => h.id !== home)!.id;
  assert.equal(rankReplicas(hosts.map((h) => (h.id === holder ? c(h.id, 0, ['b2']) : h)), { blocks: chain, session: s }, DEFAULT_PREFIX_POLICY)[0], holder);
});

test('block chains: a turn is a prefix of the next, only full blocks count, advertised blocks are bounded', () => {
  const system = 'You are a fleet. '.repeat(20);
  const turn1 = { kind: 'chat' as const, messages: [{ role: 'system' as const, content: system }, { role: 'user' as const, content: 'hello' }] };
  const held = prefixBlocks(conversationText(turn1, 'hi there, how can I help with the fleet today?')!);
  const turn2 = { kind: 'chat' as const, messages: [...turn1.messages, { role: 'assistant' as const, content: 'hi there, how can I help with the fleet today?' }, { role: 'user' as const, content: 'more' }] };
  const next = prefixBlocks(conversationText(turn2)!);
  assert.ok(held.length >= 2 && next.length >= held.length);
  assert.deepEqual(next.slice(0, held.length), held, 'turn 2 starts with what turn 1 left');
  assert.equal(reusedBlocks(next, advertisedBlocks(held)), held.length);
  const other = prefixBlocks(conversationText({ kind: 'chat', messages: [{ role: 'system', content: system }, { role: 'user', content: 'something else entirely, at length '.repeat(10) }] })!);
  assert.equal(reusedBlocks(other, held), Math.floor((`system\u0000${system}\u0001`).length / PREFIX_BLOCK_CHARS), 'another conversation shares the system prompt only');
  assert.deepEqual(prefixBlocks('x'.repeat(PREFIX_BLOCK_CHARS - 1)), [], 'a partial block is not hashed');
  assert.equal(prefixBlocks('x'.repeat(PREFIX_BLOCK_CHARS * 3)).length, 3);
  assert.equal(conversationText({ kind: 'embedding', inputs: ['x'] }), undefined);
  assert.equal(conversationText({ kind: 'completion', prompt: 'ab' }, 'cd'), 'abcd');
  const sys = { role: 'system' as const, content: 's' };
  const user = { role: 'user' as const, content: 'u' };
  assert.equal(isOpeningTurn({ kind: 'chat', messages: [sys, user] }), true, 'no history yet: an opening turn');
  assert.equal(isOpeningTurn({ kind: 'chat', messages: [sys, user, { role: 'assistant', content: 'a' }, user] }), false, 'an assistant turn');
  assert.equal(isOpeningTurn({ kind: 'chat', messages: [user, { role: 'tool', content: 'r' }] }), false, 'a tool result');
  assert.equal(isOpeningTurn({ kind: 'completion', prompt: 'ab' }), false, 'a completion has no turns');
  const long = Array.from({ length: 50 }, (_, i) => `h${i}`);
  const ad = advertisedBlocks(long);
  assert.equal(ad.length, 20);
  assert.deepEqual([ad[0], ad[15], ad[16], ad[19]], ['h0', 'h15', 'h46', 'h49']);
});

test('sequence choice: its own conversation, else one not live, else another live one; then most kept, least recently used, first', () => {
  const now = LIVE_SEQUENCE_MS * 10;
  const live = (ago: number) => now - ago; // a lastUsedAt `ago` ms before now
  const cold = now - LIVE_SEQUENCE_MS - 1;
  const rows: Array<{ name: string; free: Array<[kept: number, lastUsedAt: number, continues?: boolean]>; want: number }> = [
    { name: 'one', free: [[0, live(5)]], want: 0 },
    { name: 'all live: most kept', free: [[0, live(5)], [10, live(9)], [3, live(1)]], want: 1 },
    { name: 'all live, equal kept: least recently used', free: [[0, live(5)], [0, live(9)], [0, live(2)]], want: 1 },
    { name: 'never used ones: the first', free: [[0, 0], [0, 0]], want: 0 },
    { name: 'a shared prefix in a live conversation loses to an empty sequence', free: [[49, live(100)], [0, 0]], want: 1 },
    { name: '1000 shared tokens still lose to an empty sequence', free: [[1000, live(100)], [1, 0]], want: 1 },
    { name: 'a cold conversation is free to take, its shared prefix counts', free: [[0, 0], [49, cold]], want: 1 },
    { name: 'its own conversation beats an empty one', free: [[0, 0], [900, live(100), true]], want: 1 },
    { name: 'its own conversation beats one keeping more', free: [[1000, live(10)], [900, live(100), true]], want: 1 },
    { name: 'two of its own (a retry): most kept', free: [[800, live(10), true], [900, live(100), true]], want: 1 },
  ];
  for (const r of rows) {
    assert.equal(pickSequence(r.free.map(([kept, lastUsedAt, continues]) => ({ kept, lastUsedAt, ...(continues ? { continues } : {}) })), now), r.want, r.name);
  }
});

test('attested backends: a conversation stays on its backend, a session on its own, others rotate; a slow backend is passed over', () => {
  const none = [undefined, undefined, undefined];
  assert.equal(chooseBackend({ count: 1, next: 5, ttftMs: [] }), 0);
  assert.equal(chooseBackend({ count: 3, next: 4, ttftMs: none }), 1, 'rotation');
  assert.equal(chooseBackend({ count: 3, next: 4, held: 2, ttftMs: none }), 2, 'the conversation’s backend');
  assert.equal(chooseBackend({ count: 3, next: 4, held: 7, ttftMs: none }), 1, 'a held index past the count (the set shrank) rotates');
  const s = chooseBackend({ count: 3, next: 0, session: 'abc', ttftMs: none });
  assert.equal(chooseBackend({ count: 3, next: 1, session: 'abc', ttftMs: none }), s, 'a session keeps its backend whatever the rotation');
  assert.equal(chooseBackend({ count: 3, next: 0, held: 2, ttftMs: [50, 60, 400] }), 0, 'slow (400 vs 50): the next in rotation');
  assert.equal(chooseBackend({ count: 3, next: 0, held: 2, ttftMs: [50, 60, 140] }), 2, 'within SLOW_MIN_MS of the best: kept');
  assert.equal(chooseBackend({ count: 2, next: 0, held: 1, ttftMs: [undefined, 900] }), 1, 'no other figure to compare with');
  assert.equal(ewma(undefined, 100), 100);
  assert.equal(ewma(100, 200), 130);
});

test("local facts: a host's load is at least what this process has in flight there; the answering host holds its block", () => {
  const host = (id: string, load: HostView['load']): HostView => ({
    id, status: 'up', lastHeartbeatAt: new Date(0).toISOString(), placements: [], load,
    capacity: { maxModelSlots: 1, gpuCount: 0, totalMemoryBytes: 0, freeMemoryBytes: 0 }, files: [],
  });
  const hosts = [host('a', { m: { running: 1, queued: 0 } }), host('b', {}), host('c', { m: { running: 3, queued: 1, prefixes: ['x'] } })];
  const inFlight = new Map([['a', new Map([['m', 2]])], ['b', new Map([['m', 1]])], ['c', new Map([['m', 2]])]]);
  const out = withLocalFacts(hosts, { inFlight, answered: { hostId: 'c', build: 'm', hash: 'y' } });
  assert.deepEqual(out.map((h) => h.load.m), [
    { running: 1, queued: 1 }, // reported 1, ours 2
    { running: 0, queued: 1 }, // unreported: ours
    { running: 3, queued: 1, prefixes: ['x', 'y'] }, // reported more than ours; holds the answer
  ]);
  assert.equal(withLocalFacts(hosts, {})[1], hosts[1], 'nothing to add: the same view');
  assert.deepEqual(hosts[1]!.load, {}, 'the reports are not changed');
  assert.deepEqual(withLocalFacts(out, { answered: { hostId: 'c', build: 'm', hash: 'y' } })[2]!.load.m!.prefixes, ['x', 'y'], 'added once');
});
