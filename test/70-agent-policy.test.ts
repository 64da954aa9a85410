// The agent's decisions as pure functions, without sockets: config validation, identity rules,
// Istio-style authorization (DENY before ALLOW, default deny under ALLOW), routing, control messages.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { authorize, checkConfig, compilePolicies, mayServe, parseConfig, pickInstance, resolveIdentity, type Instance, type Policy } from '../lib/agent/index.js';
import { globMatch, workloadIdentity, type KernelIdentity } from '../lib/agent/identity.js';
import { decodeClientMessage, decodeAgentMessage, MAX_CONTROL_MESSAGE } from '../lib/agent/protocol.js';

const id = (ns: string, sa: string) => workloadIdentity('cluster.local', ns, sa, 'test');
const kernel = (o: Partial<KernelIdentity>): KernelIdentity => ({ pid: 10, uid: 0, gid: 0, netns: 4026531840, cgroups: ['/'], ...o });

function expectConfigError(value: unknown, fragment: string): void {
  try {
    checkConfig(value, 'agent.yaml');
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_AGENT_CONFIG'), String(err));
    assert.ok((err as Error).message.includes(fragment), `${(err as Error).message} should mention ${fragment}`);
    return;
  }
  assert.unreachable(`config ${JSON.stringify(value)} was accepted`);
}

test('config: defaults are filled in, the YAML form parses', () => {
  const c = checkConfig({ version: 1 });
  assert.equal(c.listen, ['@ringwire']);
  assert.is(c.trustDomain, 'cluster.local');
  assert.equal(c.policies, []);
  assert.is(c.limits.connectionsPerIdentity, 1024);
  const y = parseConfig('version: 1\nservices:\n  orders:\n    serve: ["cluster.local/ns/shop/sa/orders"]\npolicies:\n  - name: a\n    action: DENY\n    rules: [{}]\n');
  assert.equal(y.services.orders!.serve, ['cluster.local/ns/shop/sa/orders']);
});

test('config: errors name the offending path', () => {
  expectConfigError({ version: 2 }, '/version');
  expectConfigError({ version: 1, policies: [{ name: 'x', action: 'MAYBE' }] }, '/policies/0/action');
  expectConfigError({ version: 1, bogus: true }, 'bogus');
  expectConfigError({ version: 1, identities: [{ match: {}, namespace: 'a', serviceAccount: 'b' }] }, '/identities/0/match');
  expectConfigError({ version: 1, policies: [{ name: 'x', action: 'DENY' }, { name: 'x', action: 'ALLOW' }] }, '/policies/1/name');
  expectConfigError({ version: 1, services: { 'bad name!': { serve: [] } } }, 'services');
  expectConfigError({ version: 1, services: { a: { serve: ['x'], routing: { weights: [{ weight: 0 }] } } } }, '/services/a/routing/weights');
  try {
    parseConfig('version: 1\n  bad: [\n', 'f.yaml');
    assert.unreachable('bad YAML accepted');
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_AGENT_CONFIG'));
    assert.match((err as Error).message, /f\.yaml.*line \d+/);
  }
});

test('identity: first matching rule wins; unmatched callers are anonymous', () => {
  const rules = checkConfig({
    version: 1,
    identities: [
      { match: { uid: 1001, cgroup: '/shop/*' }, namespace: 'shop', serviceAccount: 'orders' },
      { match: { uid: 1001 }, namespace: 'shop', serviceAccount: 'default' },
      { match: { netns: 42 }, namespace: 'pods', serviceAccount: 'p' },
    ],
  }).identities;
  assert.is(resolveIdentity(kernel({ uid: 1001, cgroups: ['/shop/orders.scope'] }), rules, 'cluster.local')?.spiffe, 'spiffe://cluster.local/ns/shop/sa/orders');
  assert.is(resolveIdentity(kernel({ uid: 1001 }), rules, 'cluster.local')?.principal, 'cluster.local/ns/shop/sa/default');
  assert.is(resolveIdentity(kernel({ uid: 7, netns: 42 }), rules, 'td')?.spiffe, 'spiffe://td/ns/pods/sa/p');
  assert.is(resolveIdentity(kernel({ uid: 7 }), rules, 'cluster.local'), null);
  assert.ok(globMatch('a*b*c', 'aXbYc') && globMatch('*', '') && !globMatch('a*b', 'ab-c') && !globMatch('ab*ba', 'aba'));
});

const orders = id('shop', 'orders');
const web = id('web', 'frontend');
const batch = id('batch', 'jobs');

test('policy: no policy allows; DENY wins over ALLOW; ALLOW present means default deny', () => {
  assert.equal(authorize(compilePolicies([]), { source: web, service: 'orders' }), { allowed: true, policy: null });
  const policies: Policy[] = [
    { name: 'allow-web', action: 'ALLOW', selector: { services: ['orders'] }, rules: [{ from: [{ source: { namespaces: ['web'] } }] }] },
    { name: 'deny-frontend', action: 'DENY', selector: { services: ['orders'] }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/web/sa/front*'] } }] }] },
  ];
  const p = compilePolicies(policies);
  const d = authorize(p, { source: web, service: 'orders' });
  assert.is(d.allowed, false);
  assert.is(d.policy, 'deny-frontend', 'DENY evaluated before ALLOW');
  const other = id('web', 'checkout');
  assert.equal(authorize(p, { source: other, service: 'orders' }), { allowed: true, policy: 'allow-web' });
  const b = authorize(p, { source: batch, service: 'orders' });
  assert.is(b.allowed, false, 'a service with ALLOW policies denies the rest');
  assert.is(b.policy, 'allow-web');
  assert.ok(!b.allowed && b.reason.includes('no ALLOW policy'));
  assert.equal(authorize(p, { source: batch, service: 'payments' }), { allowed: true, policy: null }, 'selector scopes policies');
});

test('policy: principals exact/prefix/suffix/*, not-fields, anonymous callers, empty rules', () => {
  const mk = (source: object, action: 'ALLOW' | 'DENY' = 'ALLOW'): ReturnType<typeof compilePolicies> => compilePolicies([{ name: 'p', action, rules: [{ from: [{ source }] }] }]);
  assert.ok(authorize(mk({ principals: ['cluster.local/ns/shop/sa/orders'] }), { source: orders, service: 's' }).allowed);
  assert.ok(authorize(mk({ principals: ['*/sa/orders'] }), { source: orders, service: 's' }).allowed);
  assert.ok(authorize(mk({ principals: ['*'] }), { source: orders, service: 's' }).allowed);
  assert.not.ok(authorize(mk({ principals: ['*'] }), { source: null, service: 's' }).allowed, '* means any authenticated caller');
  assert.ok(authorize(mk({ notPrincipals: ['*'] }, 'DENY'), { source: orders, service: 's' }).allowed);
  assert.not.ok(authorize(mk({ notPrincipals: ['*'] }, 'DENY'), { source: null, service: 's' }).allowed, 'DENY notPrincipals * refuses anonymous callers');
  assert.not.ok(authorize(mk({ namespaces: ['shop'], notPrincipals: ['cluster.local/ns/shop/sa/orders'] }), { source: orders, service: 's' }).allowed, 'source fields are ANDed');
  assert.not.ok(authorize(compilePolicies([{ name: 'none', action: 'ALLOW' }]), { source: orders, service: 's' }).allowed, 'ALLOW without rules denies all');
  assert.ok(authorize(compilePolicies([{ name: 'none', action: 'DENY' }]), { source: orders, service: 's' }).allowed, 'DENY without rules matches nothing');
  assert.ok(authorize(compilePolicies([{ name: 'all', action: 'ALLOW', rules: [{}] }]), { source: null, service: 's' }).allowed, 'a rule without from matches everyone');
  assert.ok(mayServe(['cluster.local/ns/shop/*'], orders));
  assert.not.ok(mayServe(['cluster.local/ns/shop/*'], web));
  assert.not.ok(mayServe(undefined, orders));
  assert.not.ok(mayServe(['*'], null));
});

test('policy: 10,000 per-service policies still decide by the service\'s own', () => {
  const many: Policy[] = [];
  for (let i = 0; i < 10000; i++) many.push({ name: `p${i}`, action: 'ALLOW', selector: { services: [`svc${i}`] }, rules: [{ from: [{ source: { principals: [`cluster.local/ns/n${i}/sa/a`] } }] }] });
  const p = compilePolicies(many);
  assert.ok(authorize(p, { source: id('n7777', 'a'), service: 'svc7777' }).allowed);
  assert.not.ok(authorize(p, { source: id('n1', 'a'), service: 'svc7777' }).allowed);
  assert.is(p.forService('svc5').length, 1);
});

function instances(specs: Array<[string | undefined, number, number?]>): Array<Instance & { name: string }> {
  return specs.map(([version, inFlight, max], i) => ({ name: `i${i}`, version, labels: { zone: i % 2 ? 'b' : 'a' }, inFlight, maxConnections: max ?? 100, lastPicked: 0 }));
}

test('routing: least in-flight, ties by least recently picked, maxConnections and labels respected', () => {
  const list = instances([['v1', 3], ['v1', 1], ['v1', 1, 1]]);
  assert.is(pickInstance(list, { random: Math.random })?.name, 'i1', 'i2 is full');
  list[1]!.lastPicked = 5;
  list[0]!.inFlight = 1;
  assert.is(pickInstance(list, { random: Math.random })?.name, 'i0', 'tie goes to the one picked longer ago');
  assert.is(pickInstance(list, { labels: { zone: 'b' }, random: Math.random })?.name, 'i1');
  assert.is(pickInstance(instances([['v1', 1, 1]]), { random: Math.random }), undefined);
});

test('routing: weights split by version (90/10), empty subsets give way', () => {
  const list = instances([['v1', 0], ['v2', 0]]);
  const weights = [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }];
  const counts: Record<string, number> = { i0: 0, i1: 0 };
  for (let i = 0; i < 100; i++) counts[pickInstance(list, { weights, random: () => i / 100 })!.name]!++;
  assert.equal(counts, { i0: 90, i1: 10 });
  const onlyV2 = instances([['v2', 0]]);
  assert.is(pickInstance(onlyV2, { weights, random: () => 0 })?.version, 'v2');
  assert.is(pickInstance(instances([['v3', 0]]), { weights, random: () => 0 }), undefined, 'instances outside every subset get nothing');
});

test('control messages: validated per op; garbage, unknown ops, extra fields, stray fds, oversize refused', () => {
  const ok = decodeClientMessage(Buffer.from('{"op":"connect","id":1,"service":"orders"}'), 0);
  assert.equal(ok, { op: 'connect', id: 1, service: 'orders' });
  const bad: Array<[string | Buffer, number, RegExp]> = [
    [Buffer.from([0xff, 0xfe, 0x00]), 0, /not UTF-8 JSON/],
    ['[1,2]', 0, /not a JSON object/],
    ['{"op":"format-disk"}', 0, /unknown op/],
    ['{"op":"connect","id":1,"service":"orders","x":1}', 0, /additional/],
    ['{"op":"connect","id":0,"service":"orders"}', 0, /\/id/],
    ['{"op":"connect","id":1,"service":"../etc"}', 0, /\/service/],
    ['{"op":"connect","id":1,"service":"orders"}', 1, /carried 1 fds/],
    [`{"op":"hello","v":1,"name":"${'x'.repeat(MAX_CONTROL_MESSAGE)}"}`, 0, /exceeds/],
  ];
  for (const [data, fds, why] of bad) {
    try {
      decodeClientMessage(Buffer.isBuffer(data) ? data : Buffer.from(data), fds);
      assert.unreachable(`accepted ${String(data).slice(0, 60)}`);
    } catch (err) {
      assert.ok(isRingwireError(err, 'ERR_AGENT_PROTOCOL'), String(err));
      assert.match((err as Error).message, why);
    }
  }
  assert.throws(() => decodeAgentMessage(Buffer.from('{"op":"channel","id":1,"channel":1,"service":"a","peer":{"identity":null,"pid":1,"uid":0}}'), 0), /expected 1/);
});

test.run();
