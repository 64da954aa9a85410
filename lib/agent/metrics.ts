/**
 * The agent's telemetry, emitted where a connection opens and closes (as ztunnel does): Prometheus
 * metrics in a registry of the agent's own (prom-client; several agents may share a process in
 * tests), served over HTTP on a loopback port and on a UNIX socket, and one JSON access-log line per
 * open, deny, revoke and close. Byte and message counts come from the peers' reports: the agent is
 * not on the data path and never sees a payload.
 */
import { createServer, type Server } from 'node:http';
import { unlinkSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ChannelCounters } from './protocol.js';

export interface AccessLogLine {
  event: 'open' | 'deny' | 'revoke' | 'close';
  channel?: number;
  src: { identity: string | null; pid: number; uid: number; netns?: number };
  dst: { service: string; identity?: string | null; pid?: number; instance?: string };
  policy?: string | null;
  reason?: string;
  bytes_sent?: number;
  bytes_received?: number;
  messages_sent?: number;
  messages_received?: number;
  duration_ms?: number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly opened: Counter<'source' | 'destination'>;
  readonly denied: Counter<'source' | 'destination' | 'policy'>;
  readonly revoked: Counter<'source' | 'destination' | 'policy'>;
  readonly active: Gauge<'source' | 'destination'>;
  readonly messages: Counter<'source' | 'destination'>;
  readonly bytes: Counter<'source' | 'destination'>;
  readonly connectSeconds: Histogram;
  readonly openSeconds: Histogram;
  readonly registrations: Gauge<'service'>;

  constructor() {
    const registers = [this.registry];
    const pair = ['source', 'destination'] as const;
    this.opened = new Counter({ name: 'ringwire_agent_connections_opened_total', help: 'Channels brokered', labelNames: pair, registers });
    this.denied = new Counter({ name: 'ringwire_agent_connections_denied_total', help: 'Connects refused by policy', labelNames: [...pair, 'policy'], registers });
    this.revoked = new Counter({ name: 'ringwire_agent_connections_revoked_total', help: 'Channels revoked by a policy reload', labelNames: [...pair, 'policy'], registers });
    this.active = new Gauge({ name: 'ringwire_agent_connections_active', help: 'Brokered channels not yet reported closed', labelNames: pair, registers });
    this.messages = new Counter({ name: 'ringwire_agent_messages_total', help: 'Messages both peers reported sending', labelNames: pair, registers });
    this.bytes = new Counter({ name: 'ringwire_agent_bytes_total', help: 'Payload bytes both peers reported sending', labelNames: pair, registers });
    this.connectSeconds = new Histogram({
      name: 'ringwire_agent_connect_duration_seconds', help: 'From a connect request to both socketpair ends sent',
      buckets: [25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3], registers,
    });
    this.openSeconds = new Histogram({
      name: 'ringwire_agent_channel_open_seconds', help: 'As the client reports it: from its connect request to the channel open (brokering plus the peers\' handshake)',
      buckets: [100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1], registers,
    });
    this.registrations = new Gauge({ name: 'ringwire_agent_registrations', help: 'Registered instances by service', labelNames: ['service'], registers });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Adds the growth between two reports of one channel's counters. */
  addTraffic(source: string, destination: string, before: ChannelCounters, now: ChannelCounters): void {
    const dm = Math.max(0, now.messagesSent - before.messagesSent);
    const db = Math.max(0, now.bytesSent - before.bytesSent);
    if (dm > 0) this.messages.inc({ source, destination }, dm);
    if (db > 0) this.bytes.inc({ source, destination }, db);
  }
}

/** Serves GET /metrics on `listen` (a port on 127.0.0.1 or a UNIX socket path); resolves with the bound address. */
export async function serveMetrics(registry: Registry, listen: { port: number; host: string } | { path: string }): Promise<{ server: Server; address: string }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err) => res.writeHead(500).end(String(err)),
    );
  });
  if ('path' in listen) {
    try {
      unlinkSync(listen.path);
    } catch {
      // nothing stale there
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in listen) server.listen(listen.path, resolve);
    else server.listen(listen.port, listen.host, resolve);
  });
  const a = server.address();
  const address = typeof a === 'string' ? a : a ? `http://${a.address}:${a.port}` : '';
  return { server, address };
}
