#!/usr/bin/env node
/**
 * `ringwire-cni`: the CNI plugin binary. The container runtime execs it with CNI_* in the
 * environment and the network configuration on stdin (CNI spec 1.0.0); lib/cni/plugin.ts does
 * the work. Exit 0 with the result on stdout, or non-zero with the spec's error JSON on stdout.
 */
import { runPlugin } from '../lib/cni/plugin.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const stdin = process.env.CNI_COMMAND === 'VERSION' && process.stdin.isTTY ? '{"cniVersion":"1.0.0"}' : await readStdin();
const outcome = await runPlugin(process.env, stdin);
for (const line of outcome.log) process.stderr.write(`${line}\n`);
process.stdout.write(outcome.stdout, () => process.exit(outcome.exitCode));
