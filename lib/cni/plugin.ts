/**
 * The `ringwire-cni` plugin: what one exec by the container runtime does. It runs chained after
 * the pod's network plugin (bridge, calico, cilium...), never touches the pod's interfaces, and
 * passes the previous plugin's result through unchanged. Its whole job is to tell the agent on the
 * node that a pod's network namespace exists (ADD) or is going (DEL), and to verify (CHECK) that the
 * pod's `@ringwire` socket answers.
 *
 * Spec 1.0.0, "Section 2: Execution Protocol": success is a result on stdout and exit 0 (DEL and
 * CHECK print nothing); failure is {cniVersion, code, msg, details} on stdout and a non-zero exit.
 * Logs go to stderr.
 */
import { constants } from 'node:os';
import { isRingwireError } from '../errors.js';
import { closeFd } from '../native/native.js';
import { FdSocket } from '../native/unix-socket.js';
import { connectInNetns } from './netns.js';
import { encode, validReply, type EventReply, type PodEvent, type ReplyCode } from './protocol.js';
import { CniCode, CniError, parseEnv, parseNetConf, podFromArgs, SUPPORTED_VERSIONS, versionOf, type CniEnv, type RingwireNetConf } from './spec.js';

export interface PluginOutcome {
  stdout: string;
  exitCode: number;
  /** Lines for stderr. */
  log: string[];
}

/** Runs one plugin invocation from its environment and stdin. Never throws. */
export async function runPlugin(env: Record<string, string | undefined>, stdin: string): Promise<PluginOutcome> {
  const log: string[] = [];
  try {
    const cni = parseEnv(env);
    const conf = parseNetConf(stdin, cni.command);
    const out = await dispatch(cni, conf, log);
    return { stdout: out === undefined ? '' : `${JSON.stringify(out)}\n`, exitCode: 0, log };
  } catch (err) {
    const cniErr = err instanceof CniError ? err : new CniError(CniCode.IO_FAILURE, `ringwire-cni failed: ${(err as Error).message}`);
    return { stdout: `${JSON.stringify(cniErr.toJSON(versionOf(stdin)))}\n`, exitCode: 1, log };
  }
}

async function dispatch(cni: CniEnv, conf: RingwireNetConf, log: string[]): Promise<unknown> {
  if (cni.command === 'VERSION') return { cniVersion: conf.cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
  const pod = podFromArgs(cni.args);
  const excluded = pod !== undefined && conf.excludeNamespaces.includes(pod.namespace);
  const event: PodEvent = {
    v: 1,
    op: cni.command === 'ADD' ? 'add' : cni.command === 'DEL' ? 'del' : 'check',
    containerId: cni.containerId,
    ifName: cni.ifName,
    ...(cni.netns ? { netns: cni.netns } : {}),
    ...(pod ? { pod } : {}),
  };
  switch (cni.command) {
    case 'ADD': {
      // Spec: a chained plugin's result is the previous result, here untouched.
      if (conf.prevResult === undefined) throw new CniError(CniCode.INVALID_CONFIG, 'ringwire-cni must run chained after a plugin that sets up the interface (no prevResult)');
      if (!excluded) expectOk(await ask(conf, event), cni);
      return conf.prevResult;
    }
    case 'DEL': {
      // Spec: DEL succeeds when the resources are already gone; an absent agent holds none.
      try {
        const reply = await ask(conf, event);
        if (!reply.ok) log.push(`ringwire-cni: DEL ${cni.containerId}: the agent said ${reply.code}: ${reply.message}`);
      } catch (err) {
        log.push(`ringwire-cni: DEL ${cni.containerId}: ${(err as Error).message}; nothing to remove`);
      }
      return undefined;
    }
    case 'CHECK': {
      if (conf.prevResult === undefined) throw new CniError(CniCode.INVALID_CONFIG, 'CHECK needs prevResult');
      if (excluded) return undefined;
      expectOk(await ask(conf, event), cni);
      probeSocket(cni.netns!);
      return undefined;
    }
  }
}

/** CHECK's own look: connect to @ringwire from inside the pod's namespace, as the pod would. */
function probeSocket(netns: string): void {
  let fd: number;
  try {
    fd = connectInNetns(netns, '@ringwire');
  } catch (err) {
    throw new CniError(CniCode.SOCKET_MISSING, `nothing answers on @ringwire inside ${netns}`, (err as Error).message);
  }
  closeFd(fd);
}

const CODE_OF: Record<ReplyCode, number> = {
  'bad-request': CniCode.AGENT_REFUSED,
  forbidden: CniCode.AGENT_REFUSED,
  conflict: CniCode.AGENT_REFUSED,
  netns: CniCode.INVALID_ENV,
  'unknown-pod': CniCode.SOCKET_MISSING,
  internal: CniCode.TRY_AGAIN_LATER,
};

function expectOk(reply: EventReply, cni: CniEnv): void {
  if (reply.ok) return;
  throw new CniError(CODE_OF[reply.code] ?? CniCode.AGENT_REFUSED, `ringwire agent refused ${cni.command} of ${cni.containerId}: ${reply.message}`, reply.code);
}

/** One request, one reply over the agent's CNI event socket. An absent agent is TRY_AGAIN_LATER. */
async function ask(conf: RingwireNetConf, event: PodEvent): Promise<EventReply> {
  let sock: FdSocket;
  try {
    sock = await FdSocket.connect(conf.agentSocket, { timeoutMs: conf.timeoutMs, maxFds: 0 });
  } catch (err) {
    if (isRingwireError(err, 'ERR_ADDON_MISSING')) throw new CniError(CniCode.IO_FAILURE, 'ringwire-cni cannot load its native addon', err.message);
    const { ENOENT, ECONNREFUSED } = constants.errno;
    const down = isRingwireError(err) && (err.errno === ENOENT || err.errno === ECONNREFUSED);
    throw new CniError(
      CniCode.TRY_AGAIN_LATER,
      down ? `the ringwire agent is not running (nothing listens on ${conf.agentSocket})` : `cannot reach the ringwire agent at ${conf.agentSocket}`,
      (err as Error).message,
    );
  }
  try {
    return await new Promise<EventReply>((resolve, reject) => {
      const timer = setTimeout(() => reject(new CniError(CniCode.TRY_AGAIN_LATER, `the ringwire agent did not answer within ${conf.timeoutMs} ms`)), conf.timeoutMs);
      const fail = (why: string): void => {
        clearTimeout(timer);
        reject(new CniError(CniCode.TRY_AGAIN_LATER, `the ringwire agent ${why}`));
      };
      sock.once('message', (data) => {
        clearTimeout(timer);
        const reply = validReply(data);
        if (typeof reply === 'string') reject(new CniError(CniCode.IO_FAILURE, `the ringwire agent sent a bad reply: ${reply}`));
        else resolve(reply);
      });
      sock.once('error', (err) => fail(`connection failed: ${err.message}`));
      sock.once('close', () => fail('closed the connection without answering'));
      sock.send(encode(event));
    });
  } finally {
    sock.close();
  }
}
