// deploy/ on paper and checked: every manifest parses (yaml) and matches the Kubernetes object
// schemas of @kubernetes/client-node (its models are generated from the API server's OpenAPI: each
// lists its fields and their types), plus the required fields and cross-references the API
// reference names. Then the installer: conflist insertion as istio-cni does it, and a node whose
// configuration and plugin were put in place by the installer running a real chain.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { insertPlugin, installBinary, installConf, isInstalled, removePlugin, uninstallConf } from '../lib/cni/install.js';
import { startPodManager } from '../lib/cni/pod-manager.js';
import { parseConfig } from '../lib/agent/index.js';
import { addonAvailable } from '../lib/native/native.js';
import { scratch } from './helpers/index.js';
import { askFromPod, DEBIAN_CNI_DIR, EchoIdentityHost, hasCniTools, Runtime, TestNode } from './helpers/cni.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');

type Obj = Record<string, unknown>;
type Model = { getAttributeTypeMap(): Array<{ name: string; baseName: string; type: string }> };

/** apiVersion/kind -> the client-node model generated from the OpenAPI schema. */
const MODELS: Record<string, string> = {
  'v1/Namespace': 'V1Namespace',
  'v1/ServiceAccount': 'V1ServiceAccount',
  'v1/ConfigMap': 'V1ConfigMap',
  'apps/v1/DaemonSet': 'V1DaemonSet',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'V1ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'V1ClusterRoleBinding',
};

function modelOf(name: string): Model | undefined {
  const m = (k8s as unknown as Record<string, unknown>)[name];
  return typeof m === 'function' && typeof (m as unknown as Partial<Model>).getAttributeTypeMap === 'function' ? (m as unknown as Model) : undefined;
}

/** Checks `value` against an OpenAPI-generated type; every field must be known and well typed. */
function checkType(value: unknown, type: string, path: string, errors: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) errors.push(`${path}: expected a list`);
    else value.forEach((v, i) => checkType(v, array[1]!, `${path}[${i}]`, errors));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) errors.push(`${path}: expected a map`);
    else for (const [k, v] of Object.entries(value)) checkType(v, map[1]!, `${path}.${k}`, errors);
    return;
  }
  switch (type) {
    case 'string':
      if (typeof value !== 'string') errors.push(`${path}: expected a string, got ${JSON.stringify(value)}`);
      return;
    case 'number':
      if (typeof value !== 'number') errors.push(`${path}: expected a number, got ${JSON.stringify(value)}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') errors.push(`${path}: expected a boolean, got ${JSON.stringify(value)}`);
      return;
    case 'IntOrString':
      if (typeof value !== 'string' && !Number.isInteger(value)) errors.push(`${path}: expected an integer or a string`);
      return;
    case 'any':
    case 'object':
      return;
  }
  const model = modelOf(type);
  if (!model) {
    errors.push(`${path}: no schema for type ${type}`);
    return;
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    errors.push(`${path}: expected an object (${type})`);
    return;
  }
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = fields.get(k);
    if (t === undefined) errors.push(`${path}.${k}: unknown field of ${type}`);
    else checkType(v, t, `${path}.${k}`, errors);
  }
}

/** Required fields and references the API reference names (the generated models do not say). */
function checkRequired(obj: Obj, errors: string[]): void {
  const at = (path: string): unknown => path.split('.').reduce<unknown>((o, k) => (o as Obj | undefined)?.[k], obj);
  for (const p of ['apiVersion', 'kind', 'metadata.name']) if (at(p) === undefined) errors.push(`${obj.kind}: ${p} is required`);
  if (obj.kind === 'DaemonSet') {
    for (const p of ['spec.selector', 'spec.template.spec.containers']) if (at(p) === undefined) errors.push(`DaemonSet: ${p} is required`);
    const match = at('spec.selector.matchLabels') as Obj;
    const labels = at('spec.template.metadata.labels') as Obj;
    for (const [k, v] of Object.entries(match ?? {})) if (labels?.[k] !== v) errors.push(`DaemonSet: selector ${k}=${String(v)} does not select its own template`);
    const pod = at('spec.template.spec') as Obj;
    const volumes = new Set(((pod.volumes as Obj[]) ?? []).map((v) => v.name));
    for (const c of pod.containers as Obj[]) {
      if (!c.name || !c.image) errors.push('DaemonSet: every container needs name and image');
      for (const m of (c.volumeMounts as Obj[]) ?? []) if (!volumes.has(m.name)) errors.push(`DaemonSet: ${String(c.name)} mounts undeclared volume ${String(m.name)}`);
    }
  }
  if (obj.kind === 'ClusterRoleBinding') {
    for (const p of ['roleRef.apiGroup', 'roleRef.kind', 'roleRef.name']) if (at(p) === undefined) errors.push(`ClusterRoleBinding: ${p} is required`);
  }
}

function loadManifests(): Obj[] {
  const objs: Obj[] = [];
  for (const file of readdirSync(DEPLOY).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      objs.push({ ...(doc.toJS() as Obj), __file: file });
    }
  }
  return objs;
}

function validate(obj: Obj): string[] {
  const { __file, ...body } = obj;
  const errors: string[] = [];
  const key = `${String(body.apiVersion)}/${String(body.kind)}`;
  const model = MODELS[key];
  if (!model) return [`${String(__file)}: no schema for ${key}`];
  checkType(body, model, `${String(__file)}:${String(body.kind)}`, errors);
  checkRequired(body, errors);
  return errors;
}

test('every manifest parses and matches the Kubernetes schemas', () => {
  const objs = loadManifests();
  assert.equal(objs.map((o) => o.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
  for (const o of objs) assert.equal(validate(o), [], `${String(o.__file)} ${String(o.kind)}`);
});

test('the schema check can fail: a misspelt field, a wrong type, an unselected template', () => {
  const ds = loadManifests().find((o) => o.kind === 'DaemonSet')!;
  const bad = structuredClone(ds) as { spec: { template: { spec: Obj; metadata: { labels: Obj } } } };
  bad.spec.template.spec.hostNetwrok = true;
  bad.spec.template.spec.hostPID = 'yes';
  bad.spec.template.metadata.labels = { other: 'x' };
  const errors = validate(bad as unknown as Obj).join('\n');
  assert.match(errors, /hostNetwrok: unknown field of V1PodSpec/);
  assert.match(errors, /hostPID: expected a boolean/);
  assert.match(errors, /does not select its own template/);
});

test('the pieces fit: namespaces, the service account, RBAC, mounts for every path the agent uses, the privileges', () => {
  const objs = loadManifests();
  const ds = objs.find((o) => o.kind === 'DaemonSet') as unknown as { metadata: Obj; spec: { template: { spec: Obj } } };
  const pod = ds.spec.template.spec as { serviceAccountName: string; hostNetwork: boolean; hostPID: boolean; containers: Obj[] };
  for (const o of objs) if (o.kind !== 'Namespace' && !String(o.kind).startsWith('Cluster')) assert.is((o.metadata as Obj).namespace, 'ringwire-system', String(o.kind));
  const sa = objs.find((o) => o.kind === 'ServiceAccount')!;
  assert.is(pod.serviceAccountName, (sa.metadata as Obj).name);
  const binding = objs.find((o) => o.kind === 'ClusterRoleBinding') as unknown as { roleRef: Obj; subjects: Obj[] };
  assert.is(binding.roleRef.name, (objs.find((o) => o.kind === 'ClusterRole')!.metadata as Obj).name);
  assert.equal(binding.subjects, [{ kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: 'ringwire-system' }]);
  const role = objs.find((o) => o.kind === 'ClusterRole') as unknown as { rules: Array<{ verbs: string[] }> };
  assert.ok(role.rules.every((r) => r.verbs.every((v) => ['get', 'list', 'watch'].includes(v))), 'read-only');
  assert.ok(pod.hostNetwork && pod.hostPID);

  const agent = pod.containers.find((c) => c.name === 'agent') as { args: string[]; securityContext: { capabilities: { add: string[]; drop: string[] } }; volumeMounts: Array<{ mountPath: string; mountPropagation?: string }> };
  assert.equal(agent.securityContext.capabilities, { drop: ['ALL'], add: ['SYS_ADMIN', 'SYS_PTRACE'] });
  const mounted = (path: string): boolean => agent.volumeMounts.some((m) => path.startsWith(`${m.mountPath}/`));
  for (const arg of agent.args) {
    const path = arg.split('=')[1]!;
    assert.ok(mounted(path), `${arg} is on a mounted volume`);
  }
  assert.is(agent.volumeMounts.find((m) => m.mountPath === '/var/run/netns')?.mountPropagation, 'HostToContainer');
  const installer = pod.containers.find((c) => c.name === 'install-cni') as { args: string[] };
  assert.ok(installer.args.includes('--agent-socket=/var/run/ringwire/cni.sock'), 'the plugin calls the socket the agent serves');
  assert.ok(agent.args.includes('--cni-socket=/var/run/ringwire/cni.sock'));
});

test("the ConfigMap's agent.yaml is a valid agent configuration", () => {
  const cm = loadManifests().find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
  const config = parseConfig(cm.data['agent.yaml']!);
  assert.is(config.trustDomain, 'cluster.local');
});

test('conflist insertion: appended last, replaced not doubled, a .conf wrapped, removal leaves the rest', () => {
  const ours = { type: 'ringwire-cni', agentSocket: '/var/run/ringwire/cni.sock', cniVersion: '1.0.0' };
  const list = { cniVersion: '1.0.0', name: 'k8s', plugins: [{ type: 'bridge', bridge: 'cni0' }, { type: 'portmap', capabilities: { portMappings: true } }] };
  const once = insertPlugin(list, ours);
  assert.equal(once, { ...list, plugins: [...list.plugins, { type: 'ringwire-cni', agentSocket: '/var/run/ringwire/cni.sock' }] });
  assert.equal(insertPlugin(once, { ...ours, agentSocket: '/x' }).plugins, [...list.plugins, { type: 'ringwire-cni', agentSocket: '/x' }]);
  assert.equal(removePlugin(once), list);
  const single = { cniVersion: '0.4.0', name: 'net', type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local' } };
  assert.equal(insertPlugin(single, ours), { cniVersion: '0.4.0', name: 'net', plugins: [{ type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local' } }, { type: 'ringwire-cni', agentSocket: '/var/run/ringwire/cni.sock' }] });
  assert.throws(() => insertPlugin({ name: 'x' }, ours), /plugins/);
});

test('installConf picks the first file by name, turns a .conf into a .conflist, uninstall takes only our entry out', () => scratch('install conf', 5000, async (s) => {
  const dir = join(s.dir, 'net.d');
  mkdirSync(dir);
  const plugin = { type: 'ringwire-cni', agentSocket: '/run/x.sock' };
  assert.throws(() => installConf({ confDir: dir, plugin }), /no CNI configuration/);
  writeFileSync(join(dir, '99-loopback.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'lo', type: 'loopback' }));
  writeFileSync(join(dir, '10-bridge.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'k8s', type: 'bridge', bridge: 'cni0' }));
  writeFileSync(join(dir, 'README'), 'not a config');
  assert.is(installConf({ confDir: dir, plugin }), join(dir, '10-bridge.conflist'));
  assert.equal(readdirSync(dir).sort(), ['10-bridge.conflist', '99-loopback.conf', 'README']);
  assert.ok(isInstalled(dir));
  installConf({ confDir: dir, plugin });
  const conf = JSON.parse(readFileSync(join(dir, '10-bridge.conflist'), 'utf8')) as { plugins: Obj[] };
  assert.equal(conf.plugins.map((p) => p.type), ['bridge', 'ringwire-cni']);
  assert.equal(uninstallConf(dir), [join(dir, '10-bridge.conflist')]);
  assert.equal((JSON.parse(readFileSync(join(dir, '10-bridge.conflist'), 'utf8')) as { plugins: Obj[] }).plugins.map((p) => p.type), ['bridge']);
  assert.is(isInstalled(dir), false);
}));

if (addonAvailable() && hasCniTools()) {
  test('a node set up by the installer: the runtime reads its conflist and execs its plugin copy', () => scratch('installed node', 60000, async (s) => {
    const node = new TestNode(s, '78');
    // The node's CNI directories, holding Debian's plugins and a bridge network, as a kubeadm node would.
    const binDir = join(s.dir, 'opt-cni-bin');
    const confDir = join(s.dir, 'etc-cni-net.d');
    mkdirSync(binDir);
    mkdirSync(confDir);
    for (const p of ['bridge', 'host-local', 'loopback']) symlinkSync(join(DEBIAN_CNI_DIR, p), join(binDir, p));
    writeFileSync(join(confDir, '10-bridge.conflist'), JSON.stringify({
      cniVersion: '1.0.0', name: 'k8s-pod-network',
      plugins: [{ type: 'bridge', bridge: 'rw78', isGateway: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.78.0.0/24' }]], dataDir: join(s.dir, 'ipam') } }],
    }));
    // The package the installer copies: what the image holds (dist and the addon).
    const app = mkdtempSync(join(s.dir, 'app-'));
    for (const part of ['package.json', 'dist', 'build', 'prebuilds']) if (existsSync(join(ROOT, part))) symlinkSync(join(ROOT, part), join(app, part));
    // Of node_modules, the plugin needs only the addon loader at run time.
    mkdirSync(join(app, 'node_modules'));
    symlinkSync(join(ROOT, 'node_modules', 'node-gyp-build'), join(app, 'node_modules', 'node-gyp-build'));
    const socket = join(s.dir, 'cni.sock');
    const script = installBinary(binDir, app);
    installConf({ confDir, plugin: { type: 'ringwire-cni', agentSocket: socket } });
    assert.ok(existsSync(join(binDir, 'ringwire-cni.d', 'node')));
    assert.match(execFileSync(script, { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}' }).toString(), /supportedVersions/);

    const host = new EchoIdentityHost();
    s.defer(() => host.closeAll());
    const pm = await startPodManager({ host, eventSocket: socket, stateFile: join(s.dir, 'pods.json'), sweepMs: 0, log: () => undefined });
    s.defer(() => pm.close());
    const conflist = JSON.parse(readFileSync(join(confDir, '10-bridge.conflist'), 'utf8')) as ConstructorParameters<typeof Runtime>[1];
    const rt = new Runtime(node, conflist, binDir);
    const pod = { containerId: 'installed', netns: node.addPod('p'), ifName: 'eth0', args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: 'p1', K8S_POD_UID: 'u1' } };
    const add = await rt.add(pod);
    assert.equal(add.map((r) => [r.type, r.code]), [['bridge', 0], ['ringwire-cni', 0]], add.map((r) => r.stdout + r.stderr).join('\n'));
    assert.equal(add[1]!.result, add[0]!.result);
    const got = await askFromPod(node, pod.netns);
    assert.is((got.got as { identity: { pod: string } }).identity.pod, 'p1');
    const del = await rt.del(pod);
    assert.equal(del.map((r) => r.code), [0, 0]);
  }));
}

test.run();
