/** The one error mapping: typed workflow failures and parser errors → OpenAI envelope + status. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApplicationFailure, CancelledFailure, TimeoutFailure } from '@temporalio/common';
import { FailureType } from '../../src/common/failures.js';
import { budgetRefused, fromWorkflowFailure, keyRevoked, toErrorResponse } from '../../src/api/errors.js';

const app = (type: string, details?: unknown[]) => ApplicationFailure.create({ message: `msg ${type}`, type, nonRetryable: true, details });

const table: Array<[string, unknown, number, string, string | undefined]> = [
  ['model not found', app(FailureType.ModelNotFound), 404, 'model_not_found', undefined],
  ['context length', app(FailureType.ContextLengthExceeded), 400, 'context_length_exceeded', undefined],
  ['invalid request', app(FailureType.InvalidRequest), 400, 'invalid_request_error', undefined],
  ['loading → 503', app(FailureType.Unavailable, [{ retryAfterSeconds: 2, reason: 'loading' }]), 503, 'service_unavailable', '2'],
  ['no host yet → 503', app(FailureType.Unavailable, [{ retryAfterSeconds: 5, reason: 'no_hosts' }]), 503, 'service_unavailable', '5'],
  ['all replicas busy → 503 rate_limit_exceeded', app(FailureType.Unavailable, [{ retryAfterSeconds: 1, reason: 'all_tried' }]), 503, 'rate_limit_exceeded', '1'],
  ['no free slot → 503 rate_limit_exceeded', app(FailureType.Unavailable, [{ retryAfterSeconds: 1, reason: 'no_free_slot' }]), 503, 'rate_limit_exceeded', '1'],
  ['pool exhausted → 429', app(FailureType.Unavailable, [{ retryAfterSeconds: 3, reason: 'pool_exhausted' }]), 429, 'pool_exhausted', '3'],
  ['host busy', app(FailureType.HostBusy), 503, 'rate_limit_exceeded', '1'],
  ['principal cap → 429', app(FailureType.PrincipalLimited), 429, 'rate_limit_exceeded', '1'],
  ['load failed', app(FailureType.LoadFailed), 503, 'service_unavailable', '5'],
  ['generation failed', app(FailureType.GenerationFailed), 502, 'upstream_error', undefined],
  ['timeout', new TimeoutFailure('t', undefined, 'START_TO_CLOSE'), 504, 'timeout', '1'],
  ['cancelled', new CancelledFailure('c'), 499, 'cancelled', undefined],
  ['a bug', new TypeError('x is undefined at foo.ts:12'), 500, 'internal_error', undefined],
];

for (const [name, err, status, code, retryAfter] of table) {
  test(`workflow failure: ${name} → ${status} ${code}`, () => {
    const e = toErrorResponse(fromWorkflowFailure(err, 'm'));
    assert.equal(e.status, status);
    if (code === 'invalid_request_error') assert.equal(e.body.error.type, code);
    else assert.equal(e.body.error.code, code);
    assert.equal(e.headers['Retry-After'], retryAfter);
    assert.ok(!e.body.error.message.includes('foo.ts'), 'internal detail never leaks');
  });
}

// Messages match statuses: a 429 never says "unavailable"; load shedding is a rate_limit_error
// whatever its status; every other 503 says what is unavailable.
const wording: Array<[string, unknown, string, RegExp]> = [
  ['all replicas busy', app(FailureType.Unavailable, [{ retryAfterSeconds: 1, reason: 'all_tried' }]), 'rate_limit_error', /^Overloaded: .*Retry after 1s\.$/],
  ['no free slot', app(FailureType.Unavailable, [{ retryAfterSeconds: 2, reason: 'no_free_slot' }]), 'rate_limit_error', /^Overloaded: .*Retry after 2s\.$/],
  ['host busy', app(FailureType.HostBusy), 'rate_limit_error', /^Overloaded: /],
  ['no host yet', app(FailureType.Unavailable, [{ retryAfterSeconds: 5, reason: 'no_hosts' }]), 'server_error', /^Model unavailable: msg Unavailable\. Retry after 5s\.$/],
  ['pool exhausted', app(FailureType.Unavailable, [{ retryAfterSeconds: 3, reason: 'pool_exhausted' }]), 'rate_limit_error', /^Rate limited: /],
  ['principal cap', app(FailureType.PrincipalLimited), 'rate_limit_error', /^msg PrincipalLimited$/],
];
for (const [name, err, type, message] of wording) {
  test(`wording: ${name} → ${type}, ${message}`, () => {
    const e = toErrorResponse(fromWorkflowFailure(err, 'm'));
    assert.equal(e.body.error.type, type);
    assert.match(e.body.error.message, message);
    if (e.status === 429) assert.ok(!/(service|model) unavailable/i.test(e.body.error.message), 'a 429 never says unavailable');
  });
}

test('a failure nested in causes is found', () => {
  const wrapped = Object.assign(new Error('outer'), { cause: Object.assign(new Error('mid'), { cause: app(FailureType.ModelNotFound) }) });
  assert.equal(fromWorkflowFailure(wrapped, 'gpt-x').status, 404);
});

test('body-parser errors map to 400 / 413', () => {
  assert.equal(toErrorResponse({ type: 'entity.parse.failed', status: 400 }).body.error.code, 'invalid_json');
  assert.equal(toErrorResponse({ type: 'entity.too.large', status: 413 }).status, 413);
  const unknown = toErrorResponse(new Error('secret at postgres://u:p@h/db'));
  assert.equal(unknown.status, 500);
  assert.ok(!unknown.body.error.message.includes('postgres://'));
});

test('budget refusals are 429 — rate_limit_exceeded + Retry-After for a window, insufficient_quota without — never 402', () => {
  const window = toErrorResponse(budgetRefused({ kind: 'window', amount: 100, limit: 1000, seconds: 60, retryAfterSeconds: 17 }));
  assert.equal(window.status, 429);
  assert.equal(window.body.error.code, 'rate_limit_exceeded');
  assert.equal(window.body.error.type, 'rate_limit_error');
  assert.equal(window.headers['Retry-After'], '17');

  const balance = toErrorResponse(budgetRefused({ kind: 'balance', amount: 100, remaining: 20, reserved: 50 }));
  assert.equal(balance.status, 429);
  assert.equal(balance.body.error.code, 'insufficient_quota');
  assert.equal(balance.body.error.type, 'insufficient_quota');
  assert.equal(balance.headers['Retry-After'], undefined);
  assert.match(balance.body.error.message, /50 more are held/);

  // Waiting cannot make a request bigger than the whole window fit: no Retry-After.
  const tooBig = toErrorResponse(budgetRefused({ kind: 'exceedsWindow', amount: 2000, limit: 1000, seconds: 60 }));
  assert.equal(tooBig.status, 429);
  assert.equal(tooBig.body.error.code, 'rate_limit_exceeded');
  assert.equal(tooBig.body.error.param, 'max_tokens');
  assert.equal(tooBig.headers['Retry-After'], undefined);

  for (const e of [window, balance, tooBig]) assert.notEqual(e.status, 402);
});

test('a revoked key is 401 invalid_api_key', () => {
  const e = toErrorResponse(keyRevoked());
  assert.equal(e.status, 401);
  assert.equal(e.body.error.code, 'invalid_api_key');
});
