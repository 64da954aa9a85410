/** Where bench/peers/http-peer.ts serves each protocol, derived from the run's temp dir. */
import { basename, join } from 'node:path';

export function httpPeerAddresses(dir: string): Record<'echoRingwire' | 'echoUds' | 'fastifyRingwire' | 'fastifyUds' | 'grpcRingwire' | 'grpcUds', string> {
  const tag = `ringwire-bench-http-${basename(dir)}`;
  return {
    echoRingwire: `@${tag}-echo`,
    echoUds: join(dir, 'echo.sock'),
    fastifyRingwire: `@${tag}-fastify`,
    fastifyUds: join(dir, 'fastify.sock'),
    grpcRingwire: `@${tag}-grpc`,
    grpcUds: join(dir, 'grpc.sock'),
  };
}
