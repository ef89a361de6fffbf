/**
 * The three measurements of bench/fleet.ts, each against a running process fleet
 * (tests/support/processFleet.ts): a closed loop of concurrent clients, a burst far over the
 * fleet's admission capacity, and a steady trickle across the SIGKILL of the busiest host.
 * Requests go out with plain `fetch` so every status is counted, not thrown.
 */
import { performance } from 'node:perf_hooks';
import type { ProcessFleet } from '../tests/support/processFleet.js';
import type { TinyModelSize } from '../src/model/tinyModel.js';
import { median, percentile, round } from './stats.js';

export interface ChatBody {
  model: string;
  messages: Array<{ role: 'user'; content: string }>;
  max_tokens: number;
  temperature: number;
}

export interface Outcome {
  status: number; // 0: no HTTP answer (connection error)
  sentAt: number; // performance.now()
  doneAt: number;
  id?: string;
  code?: string;
  completionTokens: number;
}

export async function chat(apiUrl: string, body: ChatBody): Promise<Outcome> {
  const sentAt = performance.now();
  try {
    const res = await fetch(`${apiUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json().catch(() => ({}))) as { id?: string; usage?: { completion_tokens?: number }; error?: { code?: string } };
    const out = { status: res.status, sentAt, doneAt: performance.now(), id: json.id, code: json.error?.code };
    return { ...out, completionTokens: res.status === 200 ? (json.usage?.completion_tokens ?? 0) : 0 };
  } catch (err) {
    return { status: 0, sentAt, doneAt: performance.now(), code: (err as Error).message, completionTokens: 0 };
  }
}

const sleep = (n: number) => new Promise((r) => setTimeout(r, n));
const ms = (o: Outcome) => o.doneAt - o.sentAt;
const pct = (xs: number[], p: number) => (xs.length ? round(percentile(xs, p)) : null);
const share = (n: number, of: number) => (of ? round(n / of, 4) : 0);
const tally = (xs: string[]) => xs.reduce<Record<string, number>>((acc, x) => ((acc[x] = (acc[x] ?? 0) + 1), acc), {});
const byStatus = (outs: Outcome[]) => tally(outs.map((o) => String(o.status)));

/** Closed loop: `clients` callers, each sends its next request when the previous answer arrived. */
export async function closedLoop(f: ProcessFleet, body: ChatBody, clients: number, limit: { requests?: number; seconds?: number }) {
  const outs: Outcome[] = [];
  const since = new Date();
  const t0 = performance.now();
  const deadline = limit.seconds ? t0 + limit.seconds * 1000 : Infinity;
  let issued = 0;
  const more = () => (limit.requests === undefined || issued < limit.requests) && performance.now() < deadline;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (more()) {
        issued++;
        outs.push(await chat(f.apiUrl, body));
      }
    }),
  );
  const wallS = (Math.max(...outs.map((o) => o.doneAt)) - t0) / 1000;
  const ok = outs.filter((o) => o.status === 200);
  const lat = ok.map(ms);
  const hosts = (await loggedSince(f, since, outs.length)).map((r) => r.host_id ?? 'none');
  return {
    clients,
    requests: outs.length,
    wallS: round(wallS),
    statuses: byStatus(outs),
    reqPerS: round(ok.length / wallS),
    completionTokPerS: round(ok.reduce((a, o) => a + o.completionTokens, 0) / wallS),
    tokensPerAnswer: ok.length ? round(ok.reduce((a, o) => a + o.completionTokens, 0) / ok.length) : 0,
    p50Ms: pct(lat, 50),
    p99Ms: pct(lat, 99),
    servedBy: tally(hosts),
  };
}

/** `rounds` bursts of `concurrency` requests sent at once; each burst is awaited in full. */
export async function overload(f: ProcessFleet, body: ChatBody, concurrency: number, rounds: number) {
  const outs: Outcome[] = [];
  const since = new Date();
  for (let r = 0; r < rounds; r++) {
    outs.push(...(await Promise.all(Array.from({ length: concurrency }, () => chat(f.apiUrl, body)))));
  }
  // Every request's attempts, from its history (a 503 body carries no id: the request log has it).
  const rows = await loggedSince(f, since, outs.length);
  const attempts = await Promise.all(rows.map(async (r) => ({ ok: r.status === 'ok', a: await attemptsOf(f, r.id) })));
  const refused = attempts.filter((x) => !x.ok);
  const of = (s: number) => outs.filter((o) => o.status === s);
  const [ok, r503, r429] = [of(200), of(503), of(429)];
  const other = outs.length - ok.length - r503.length - r429.length;
  const codes503 = tally(r503.map((o) => o.code ?? '?'));
  return {
    concurrency,
    rounds,
    requests: outs.length,
    share200: share(ok.length, outs.length),
    share503: share(r503.length, outs.length),
    share429: share(r429.length, outs.length),
    other,
    statuses: byStatus(outs),
    codes503,
    p50Ms503: pct(r503.map(ms), 50),
    p99Ms503: pct(r503.map(ms), 99),
    maxMs503: r503.length ? round(Math.max(...r503.map(ms))) : null,
    p50Ms200: pct(ok.map(ms), 50),
    firstAttemptHost: tally(attempts.map((x) => x.a[0]?.host ?? 'none')),
    attemptsPerRefused: tally(refused.map((x) => String(x.a.length))),
    attemptOutcomes: tally(attempts.flatMap((x) => x.a.map((y) => y.outcome))),
  };
}

/** request_log rows of requests that started since `since`, once `n` are there (written just after the answer). */
async function loggedSince(f: ProcessFleet, since: Date, n: number) {
  const q = () => f.stack.db.db.selectFrom('request_log').select(['id', 'status', 'host_id']).where('started_at', '>=', since).execute();
  let rows = await q();
  for (let tries = 0; tries < 50 && rows.length < n; tries++) (await sleep(100), (rows = await q()));
  return rows;
}

/** Per host attempt of one request (workflow history): the host and how the attempt ended. */
async function attemptsOf(f: ProcessFleet, id: string): Promise<Array<{ host: string; outcome: string }>> {
  const events = (await f.stack.temporal.client.workflow.getHandle(id).fetchHistory()).events ?? [];
  const out: Array<{ host: string; outcome: string }> = [];
  for (const e of events) {
    const q = e.activityTaskScheduledEventAttributes?.taskQueue?.name;
    if (q?.startsWith('host.')) out.push({ host: q.slice(5), outcome: 'open' });
    const last = out[out.length - 1];
    if (!last) continue;
    if (e.activityTaskCompletedEventAttributes) last.outcome = 'ok';
    const failed = e.activityTaskFailedEventAttributes?.failure?.message;
    if (failed) last.outcome = /\((\w+)\)$/.exec(failed)?.[1] ?? 'failed'; // "… at capacity for m (queue_full)"
    const timedOut = e.activityTaskTimedOutEventAttributes?.failure?.message;
    if (timedOut) last.outcome = timedOut.replace(/^activity /, '').replace(/ timeout$/, '_timeout'); // ScheduleToStart_timeout
  }
  return out;
}

/** Host that served each successful request, from request_log (written just after the answer). */
async function servedBy(f: ProcessFleet, ids: string[]): Promise<Map<string, string | null>> {
  const found = new Map<string, string | null>();
  for (let tries = 0; tries < 50 && found.size < ids.length; tries++) {
    if (tries) await sleep(100);
    const rows = await f.stack.db.db.selectFrom('request_log').select(['id', 'host_id']).where('id', 'in', ids).execute();
    for (const r of rows) found.set(r.id, r.host_id);
  }
  return found;
}

/**
 * An open-loop trickle (one request every `intervalMs`, none waits for another) for `preS`
 * seconds; then SIGKILL of the host that served most of it; the trickle goes on for `postS`
 * seconds and every request is awaited. Measured from the kill: the first success served by
 * another host among requests sent after the kill (so routed after it), the first success
 * from another host of any request, failures among requests still open at the kill or sent
 * after it, how many of those successes needed a failover, and how many successes sent after
 * the kill were still routed to the dead host first (workflow histories).
 */
export async function killover(f: ProcessFleet, body: ChatBody, intervalMs: number, preS: number, postS: number) {
  const pending: Array<Promise<Outcome>> = [];
  const done: Outcome[] = [];
  let stopAt = Infinity;
  const sending = (async () => {
    while (performance.now() < stopAt) {
      pending.push(chat(f.apiUrl, body).then((o) => (done.push(o), o)));
      await sleep(intervalMs);
    }
  })();
  await sleep(preS * 1000);
  const preHosts = await servedBy(f, done.filter((o) => o.status === 200 && o.id).map((o) => o.id!)); // trickle goes on
  const counts: Record<string, number> = {};
  for (const h of preHosts.values()) if (h) counts[h] = (counts[h] ?? 0) + 1;
  const victim = Object.entries(counts).sort((a, b) => b[1] - a[1])[0]?.[0];
  if (!victim) throw new Error('killover: no request succeeded before the kill');
  const firstAfter = pending.length;
  const killAt = performance.now();
  const killed = f.kill(victim, 'SIGKILL');
  stopAt = killAt + postS * 1000;
  await sending;
  await killed;
  const all = await Promise.all(pending);
  const affected = all.filter((o, i) => i >= firstAfter || o.doneAt > killAt); // open at the kill or sent after it
  const ok = affected.filter((o) => o.status === 200 && o.id);
  const hosts = await servedBy(f, ok.map((o) => o.id!));
  const elsewhere = ok.filter((o) => hosts.get(o.id!) && hosts.get(o.id!) !== victim).sort((a, b) => a.doneAt - b.doneAt);
  const routedAfter = elsewhere.filter((o) => o.sentAt >= killAt);
  const tried = await Promise.all(ok.map(async (o) => ({ o, a: await attemptsOf(f, o.id!) })));
  const toVictim = tried.filter((x) => x.o.sentAt >= killAt && x.a[0]?.host === victim).map((x) => x.o.sentAt - killAt);
  const sentAfter = all.slice(firstAfter);
  const lat = (xs: Outcome[]) => xs.map(ms);
  return {
    intervalMs,
    preS,
    postS,
    preKillServedBy: counts,
    killed: victim,
    firstRoutedAfterKillOkMs: routedAfter[0] ? round(routedAfter[0].doneAt - killAt) : null,
    firstRoutedAfterKillSentMs: routedAfter[0] ? round(routedAfter[0].sentAt - killAt) : null,
    firstAnyOkElsewhereMs: elsewhere[0] ? round(elsewhere[0].doneAt - killAt) : null,
    servedByVictimAfterKill: ok.filter((o) => hosts.get(o.id!) === victim && o.doneAt > killAt).length,
    openAtKill: affected.length - sentAfter.length,
    sentAfterKill: sentAfter.length,
    failed: affected.filter((o) => o.status !== 200).length,
    failedStatuses: byStatus(affected.filter((o) => o.status !== 200)),
    okWithFailover: tried.filter((x) => x.a.length > 1).length,
    victimAttemptOutcomes: tally(tried.flatMap((x) => x.a.filter((y) => y.host === victim).map((y) => y.outcome))),
    routedToVictimAfterKill: toVictim.length,
    lastRoutedToVictimSentMs: toVictim.length ? round(Math.max(...toVictim)) : null,
    sentAfterKillP50Ms: sentAfter.length ? round(median(lat(sentAfter))) : null,
    sentAfterKillMaxMs: sentAfter.length ? round(Math.max(...lat(sentAfter))) : null,
    sentAfterKillSlowOver4s: sentAfter.filter((o) => ms(o) > 4000).length,
  };
}

/**
 * The cost of the probe load (a child process loads a build before the worker does, the first
 * time a host sees it): wall time of a `coldLoad` on a host with probes on versus one with
 * probes off, each loading the same fresh builds (new seeds, so nothing is cached), by size.
 */
export async function probeCost(f: ProcessFleet, o: { withProbe: string; withoutProbe: string; sizes: readonly TinyModelSize[]; builds: number }) {
  const rows: Array<{ size: TinyModelSize; probeMs: number[]; noProbeMs: number[] }> = [];
  let seed = 700;
  for (const size of o.sizes) {
    const probeMs: number[] = [];
    const noProbeMs: number[] = [];
    for (let i = 0; i < o.builds; i++) {
      const id = await f.addModel(`probe-${size}-${seed}`, size, seed++, false);
      for (const [host, into] of [[o.withProbe, probeMs], [o.withoutProbe, noProbeMs]] as const) {
        const t0 = performance.now();
        await f.load(host, id);
        into.push(performance.now() - t0);
      }
    }
    rows.push({ size, probeMs, noProbeMs });
  }
  return rows.map((r) => ({
    size: r.size,
    builds: r.probeMs.length,
    withProbeP50Ms: round(median(r.probeMs)),
    withoutProbeP50Ms: round(median(r.noProbeMs)),
    addedP50Ms: round(median(r.probeMs) - median(r.noProbeMs)),
    ratio: round(median(r.probeMs) / median(r.noProbeMs)),
  }));
}
