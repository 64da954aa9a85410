// The CNI spec 1.0.0 surface of ringwire-cni without namespaces: environment and configuration
// parsing, error JSON, VERSION, the event protocol's validation, and the state file. These are the
// pure functions; test 76 runs the same plugin exec'd in a real chain.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CniCode, CniError, parseCniArgs, parseEnv, parseNetConf, podFromArgs } from '../lib/cni/spec.js';
import { runPlugin } from '../lib/cni/plugin.js';
import { encode, validEvent, validReply } from '../lib/cni/protocol.js';
import { loadState, saveState, type PodRecord } from '../lib/cni/state.js';
import { inClusterApi, serviceAccountFromApi } from '../lib/cni/kube.js';
import { addonAvailable } from '../lib/native/native.js';
import { scratch } from './helpers/index.js';

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
  return undefined;
}

const conf = (extra: Record<string, unknown> = {}): string => JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'ringwire-cni', prevResult: { cniVersion: '1.0.0', ips: [] }, ...extra });
const addEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0' };

test('environment: required variables per command, named when missing (error 4)', () => {
  assert.is(parseEnv(addEnv).command, 'ADD');
  assert.is(parseEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
  assert.is(parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'a', CNI_IFNAME: 'eth0' }).netns, undefined, 'DEL may come without CNI_NETNS');
  for (const env of [{}, { CNI_COMMAND: 'add' }, { ...addEnv, CNI_NETNS: '' }, { ...addEnv, CNI_CONTAINERID: '../x' }, { ...addEnv, CNI_NETNS: 'relative/path' }, { CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'a', CNI_IFNAME: 'eth0' }]) {
    assert.is(codeOf(() => parseEnv(env)), CniCode.INVALID_ENV, JSON.stringify(env));
  }
  try {
    parseEnv({ CNI_COMMAND: 'ADD', CNI_IFNAME: 'eth0' });
  } catch (err) {
    assert.match((err as Error).message, /CNI_CONTAINERID, CNI_NETNS/);
  }
});

test('CNI_ARGS: KEY=VALUE pairs; the Kubernetes pod keys give the pod', () => {
  const args = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=orders-7d9f;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1-2-3');
  assert.equal(podFromArgs(args), { namespace: 'shop', name: 'orders-7d9f', uid: '1-2-3' });
  assert.is(podFromArgs(parseCniArgs('IgnoreUnknown=1')), undefined, 'not Kubernetes: no pod');
  assert.equal(parseCniArgs('A=b=c;;'), { A: 'b=c' });
  assert.is(codeOf(() => parseCniArgs('novalue')), CniCode.INVALID_ENV);
});

test('configuration: decode failure 6, bad shape 7, unsupported version 1, typo of our own key 2', () => {
  assert.is(parseNetConf(conf(), 'ADD').agentSocket, '/var/run/ringwire/cni.sock');
  assert.is(parseNetConf(conf({ cniVersion: '0.4.0' }), 'ADD').cniVersion, '0.4.0');
  const cases: Array<[string, number]> = [
    ['', CniCode.DECODE_FAILURE],
    ['{"cniVersion":', CniCode.DECODE_FAILURE],
    ['[1,2]', CniCode.DECODE_FAILURE],
    ['{}', CniCode.INVALID_CONFIG],
    [conf({ cniVersion: '0.3.1' }), CniCode.INCOMPATIBLE_VERSION],
    [conf({ cniVersion: '2.0.0' }), CniCode.INCOMPATIBLE_VERSION],
    [conf({ name: '' }), CniCode.INVALID_CONFIG],
    [conf({ agentSocket: 42 }), CniCode.INVALID_CONFIG],
    [conf({ timeoutMs: -1 }), CniCode.INVALID_CONFIG],
    [conf({ excludeNamespaces: 'kube-system' }), CniCode.INVALID_CONFIG],
    [conf({ prevResult: [] }), CniCode.INVALID_CONFIG],
    [conf({ agentsocket: '/x' }), CniCode.UNSUPPORTED_FIELD],
  ];
  for (const [text, code] of cases) assert.is(codeOf(() => parseNetConf(text, 'ADD')), code, text);
  // Keys the runtime adds (runtimeConfig, args, dns, capabilities...) are not ours to refuse.
  assert.ok(parseNetConf(conf({ runtimeConfig: {}, args: { cni: {} }, dns: {}, capabilities: {} }), 'ADD'));
});

test('runPlugin: VERSION, errors as {cniVersion, code, msg, details} with a non-zero exit', async () => {
  const v = await runPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
  assert.equal([v.exitCode, JSON.parse(v.stdout)], [0, { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0'] }]);
  const bad = await runPlugin(addEnv, 'not json');
  assert.is(bad.exitCode, 1);
  const err = JSON.parse(bad.stdout) as Record<string, unknown>;
  assert.equal(Object.keys(err).sort(), ['cniVersion', 'code', 'details', 'msg']);
  assert.equal([err.cniVersion, err.code], ['1.0.0', 6]);
  const v04 = await runPlugin({ CNI_COMMAND: 'ADD' }, conf({ cniVersion: '0.4.0' }));
  assert.is((JSON.parse(v04.stdout) as { cniVersion: string }).cniVersion, '0.4.0', 'the error speaks the config\'s version');
});

test('runPlugin: agent down is error 11 on ADD and CHECK; DEL succeeds with nothing on stdout', () => scratch('agent down', 10000, async (s) => {
  if (!addonAvailable()) throw new Error('native addon missing');
  const c = conf({ agentSocket: join(s.dir, 'nobody.sock') });
  const add = await runPlugin(addEnv, c);
  assert.is(add.exitCode, 1);
  assert.is((JSON.parse(add.stdout) as { code: number }).code, 11);
  const check = await runPlugin({ ...addEnv, CNI_COMMAND: 'CHECK' }, c);
  assert.is((JSON.parse(check.stdout) as { code: number }).code, 11);
  const del = await runPlugin({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'abc123', CNI_IFNAME: 'eth0' }, c);
  assert.equal([del.exitCode, del.stdout], [0, '']);
  assert.match(del.log.join('\n'), /nothing to remove/);
  // An excluded namespace is passed through without asking the (absent) agent.
  const excluded = await runPlugin({ ...addEnv, CNI_ARGS: 'K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns' }, conf({ agentSocket: join(s.dir, 'nobody.sock'), excludeNamespaces: ['kube-system'] }));
  assert.equal([excluded.exitCode, JSON.parse(excluded.stdout)], [0, { cniVersion: '1.0.0', ips: [] }]);
}));

test('the built plugin file is executable by a runtime: shebang, VERSION over exec', () => {
  const js = fileURLToPath(new URL('../bin/ringwire-cni.js', import.meta.url));
  assert.match(readFileSync(js, 'utf8').split('\n')[0]!, /^#!\/usr\/bin\/env node$/);
  const out = execFileSync(process.execPath, [js], { env: { CNI_COMMAND: 'VERSION', PATH: process.env.PATH }, input: '{"cniVersion":"0.4.0"}' }).toString();
  assert.equal(JSON.parse(out), { cniVersion: '0.4.0', supportedVersions: ['0.4.0', '1.0.0'] });
});

test('event protocol: syntax checks name what is wrong', () => {
  const ok = { v: 1, op: 'add', containerId: 'c', ifName: 'eth0', netns: '/run/netns/p', pod: { namespace: 'a', name: 'b', uid: 'u' } };
  const parse = (o: unknown): unknown => validEvent(Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)));
  assert.equal(parse(ok), ok);
  assert.equal(parse({ v: 1, op: 'del', containerId: 'c', ifName: 'eth0' }), { v: 1, op: 'del', containerId: 'c', ifName: 'eth0' });
  const bad: Array<[unknown, RegExp]> = [
    ['garbage', /not JSON/],
    [[], /object/],
    [{ ...ok, v: 2 }, /version/],
    [{ ...ok, op: 'gc' }, /unknown op/],
    [{ ...ok, containerId: '' }, /containerId/],
    [{ ...ok, netns: 'relative' }, /absolute/],
    [{ ...ok, netns: undefined }, /needs netns/],
    [{ ...ok, pod: { namespace: 'a' } }, /pod must be/],
    [{ ...ok, containerId: 'x'.repeat(2000) }, /containerId/],
    [{ ...ok, pad: 'x'.repeat(20000) }, /exceeds/],
  ];
  for (const [input, why] of bad) assert.match(String(parse(input)), why, JSON.stringify(input).slice(0, 80));
  assert.equal(validReply(encode({ v: 1, ok: true, socket: '@ringwire' })), { v: 1, ok: true, socket: '@ringwire' });
  assert.type(validReply(Buffer.from('{"v":1,"ok":false}')), 'string');
});

test('state file: round trip, torn or foreign files set aside, bad records dropped', () => scratch('state', 5000, async (s) => {
  const path = join(s.dir, 'pods.json');
  const warnings: string[] = [];
  const warn = (m: string): void => void warnings.push(m);
  assert.equal(loadState(path, warn), []);
  const rec: PodRecord = { containerId: 'c', ifName: 'eth0', netns: '/run/netns/p', netnsDev: 4, netnsIno: 4026532000, pod: { namespace: 'a', name: 'b', uid: 'u' }, addedAt: 'now' };
  saveState(path, [rec]);
  assert.equal(loadState(path, warn), [rec]);
  assert.equal(readdirSync(s.dir), ['pods.json'], 'no temporary file left');
  writeFileSync(path, JSON.stringify({ version: 1, pods: [rec, { containerId: 3 }] }));
  assert.equal(loadState(path, warn), [rec]);
  assert.match(warnings.pop()!, /dropped 1 malformed/);
  writeFileSync(path, '{"version": 1, "pods": [');
  assert.equal(loadState(path, warn), []);
  assert.match(warnings.pop()!, /moved to .*corrupt/);
  assert.ok(readdirSync(s.dir).some((f) => f.startsWith('pods.json.corrupt-')));
}));

test('service account from the API server: GET the pod with the token, check its uid; every failure is an error, not a guess', () => scratch('kube api', 20000, async (s) => {
  const key = join(s.dir, 'key.pem');
  const cert = join(s.dir, 'ca.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=kubernetes', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1'], { stdio: 'ignore' });
  const seen: string[] = [];
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    seen.push(`${req.headers.authorization} ${req.url}`);
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(req.url ?? '');
    if (req.headers.authorization !== 'Bearer tok-1' || !m) return void res.writeHead(403).end();
    if (m[2] === 'gone') return void res.writeHead(404).end('{}');
    if (m[2] === 'garbled') return void res.writeHead(200).end('<html>');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ metadata: { uid: `uid-${m[2]}` }, spec: m[2] === 'plain' ? {} : { serviceAccountName: 'orders' } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.defer(() => new Promise((r) => server.close(r)));
  writeFileSync(join(s.dir, 'token'), 'tok-1\n');
  const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String((server.address() as AddressInfo).port) };
  assert.is(inClusterApi({}, s.dir), undefined, 'outside a cluster');
  const api = inClusterApi(env, s.dir)!;
  const saOf = serviceAccountFromApi(api, 5000);
  assert.is(await saOf({ namespace: 'shop', name: 'p1', uid: 'uid-p1' }), 'orders');
  assert.is(await saOf({ namespace: 'shop', name: 'plain', uid: undefined }), 'default', 'a pod that names none has the default account');
  assert.equal(seen[0], `Bearer tok-1 /api/v1/namespaces/shop/pods/p1`);
  for (const [pod, why] of [[{ namespace: 'shop', name: 'p1', uid: 'uid-other' }, /uid is uid-p1, not uid-other/], [{ namespace: 'shop', name: 'gone', uid: undefined }, /answered 404/], [{ namespace: 'shop', name: 'garbled', uid: undefined }, /not JSON/]] as const) {
    await saOf(pod).then(() => assert.unreachable('should fail'), (err: Error) => assert.match(err.message, why));
  }
  writeFileSync(join(s.dir, 'token'), 'rotated');
  await saOf({ namespace: 'shop', name: 'p1', uid: 'uid-p1' }).then(() => assert.unreachable('should fail'), (err: Error) => assert.match(err.message, /answered 403/));
  const wrongCa = serviceAccountFromApi({ ...api, ca: readFileSync('/etc/ssl/certs/ca-certificates.crt') }, 5000);
  await wrongCa({ namespace: 'shop', name: 'p1', uid: undefined }).then(() => assert.unreachable('should fail'), (err: Error) => assert.match(err.message, /certificate/));
}));

test.run();
