#!/usr/bin/env node
/**
 * `ringwire <command> [options]`: one entry per command, each a module that takes its own argv and
 * resolves with an exit code. Add a command with one line in `commands`.
 */
import { isRingwireError } from '../lib/errors.js';
import { agentCommand } from '../lib/agent/cli.js';
import { ivshmemServerCommand } from '../lib/ivshmem/cli.js';
import { vhostUserRngCommand, vhostUserSwitchCommand } from '../virtio/devices/cli.js';
import { cniInstallCommand } from '../lib/cni/cli.js';
import { GEN_SUMMARY, typesGenCommand } from '../lib/types/cli.js';
import { nodeAgentCommand } from '../lib/cni/node-agent.js';

type Command = { run(argv: string[]): Promise<number>; summary: string };

const commands: Record<string, Command> = {
  agent: { run: agentCommand, summary: 'the node agent (identity, policy, brokered channels); `agent status` asks a running one' },
  'ivshmem-server': { run: ivshmemServerCommand, summary: 'ivshmem-server for QEMU ivshmem-doorbell devices, with a host peer' },
  'vhost-user-switch': { run: vhostUserSwitchCommand, summary: 'learning L2 switch between VMs (vhost-user-net), with host ports' },
  'vhost-user-rng': { run: vhostUserRngCommand, summary: 'vhost-user-rng back-end (the guest reads /dev/hwrng)' },
  gen: { run: (argv) => typesGenCommand(argv), summary: GEN_SUMMARY },
  'node-agent': { run: nodeAgentCommand, summary: 'the agent with the CNI pod manager: a socket in every pod (Kubernetes DaemonSet)' },
  'cni-install': { run: cniInstallCommand, summary: 'copy ringwire-cni into the node and chain it into its CNI configuration (DaemonSet)' },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return `usage: ringwire <command> [options]\ncommands:\n${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`).join('\n')}\n'ringwire <command> --help' describes a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`ringwire: unknown command ${JSON.stringify(name)}\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    const code = isRingwireError(err) ? err.code : (err as { code?: string }).code;
    console.error(`ringwire ${name}: ${code ? `${code}: ` : ''}${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
