/**
 * The one thing the pod manager asks the Kubernetes API: a pod's service account, which CNI does
 * not carry (istio-cni's plugin looks the pod up the same way). In-cluster only: the API server's
 * address from KUBERNETES_SERVICE_HOST/PORT, the agent's service account token (re-read for every
 * request, since projected tokens rotate) and the cluster CA. One GET per pod ADD; a failure is an
 * error, never a guess, so the plugin reports "try again later" rather than a wrong identity.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { ringwireError } from '../errors.js';
import type { PodRef } from './spec.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeApi {
  host: string;
  port: number;
  tokenFile: string;
  ca: string | Buffer;
}

/** The API server as a pod sees it, or undefined outside a cluster. */
export function inClusterApi(env: Record<string, string | undefined> = process.env, dir = SERVICE_ACCOUNT_DIR): KubeApi | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = Number(env.KUBERNETES_SERVICE_PORT ?? '443');
  if (!host || !Number.isInteger(port)) return undefined;
  try {
    return { host, port, tokenFile: join(dir, 'token'), ca: readFileSync(join(dir, 'ca.crt')) };
  } catch {
    return undefined;
  }
}

/** A `serviceAccountOf` for the pod manager: GET the pod, check its uid, return spec.serviceAccountName. */
export function serviceAccountFromApi(api: KubeApi, timeoutMs = 5000): (pod: PodRef) => Promise<string> {
  return (pod) =>
    new Promise((resolve, reject) => {
      const fail = (why: string): void => reject(ringwireError('ERR_REMOTE', `service account of pod ${pod.namespace}/${pod.name}: ${why}`));
      let token: string;
      try {
        token = readFileSync(api.tokenFile, 'utf8').trim();
      } catch (err) {
        fail(`cannot read the token: ${(err as Error).message}`);
        return;
      }
      const req = request(
        {
          host: api.host,
          port: api.port,
          method: 'GET',
          path: `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}`,
          headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
          ca: api.ca,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > 4 << 20) req.destroy(new Error('response larger than 4 MiB'));
            else chunks.push(c);
          });
          res.on('end', () => {
            if (res.statusCode !== 200) return fail(`the API server answered ${res.statusCode}`);
            let body: { metadata?: { uid?: string }; spec?: { serviceAccountName?: string } };
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
            } catch {
              return fail('the API server sent something that is not JSON');
            }
            // A pod deleted and re-created under the same name is another pod.
            if (pod.uid !== undefined && body.metadata?.uid !== pod.uid) return fail(`uid is ${body.metadata?.uid}, not ${pod.uid}`);
            resolve(body.spec?.serviceAccountName || 'default');
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => fail(err.message));
      req.end();
    });
}
