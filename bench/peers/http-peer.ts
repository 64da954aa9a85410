/**
 * The far side of the `undici-*`, `fastify-*` and `grpc-*` transports, in its own process.
 * argv: <dir>. Serves, each on its own address under <dir> (ringwire: abstract names from it):
 *   - echo (every request's body back): serveHttp() on ringwire and node:http on a UNIX socket;
 *   - Fastify hello-world (GET / -> {"hello":"world"}): through httpServerFactory() on ringwire and
 *     fastify.listen({ path }) on a UNIX socket;
 *   - a grpc-js unary echo service: bindAsync('unix:...') and createConnectionInjector() fed with
 *     ringwire channel Duplexes.
 * Every ringwire listener uses the default poll mode: the server sleeps on its doorbell.
 * Prints `listening` once all are bound.
 */
import http from 'node:http';
import Fastify from 'fastify';
import * as grpc from '@grpc/grpc-js';
import { createDuplex, listen } from '../../lib/index.js';
import { httpServerFactory, serveHttp } from '../../lib/http/index.js';
import { httpPeerAddresses } from './http-addresses.js';

const a = httpPeerAddresses(process.argv[2]!);

function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
}

await serveHttp(a.echoRingwire, echo, { channel: { maxRingBytes: 1 << 22 } });
const plain = http.createServer(echo);
plain.keepAliveTimeout = 60_000;
await new Promise<void>((r) => plain.listen(a.echoUds, r));

function hello(f: ReturnType<typeof Fastify>): void {
  f.get('/', async () => ({ hello: 'world' }));
}
const fr = Fastify({ serverFactory: httpServerFactory({ channel: { maxRingBytes: 1 << 22 } }) });
hello(fr);
await fr.listen({ path: a.fastifyRingwire });
const fu = Fastify({ keepAliveTimeout: 60_000 });
hello(fu);
await fu.listen({ path: a.fastifyUds });

const g = new grpc.Server();
const passThrough = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
g.addService({
  Echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: passThrough.serialize, requestDeserialize: passThrough.deserialize, responseSerialize: passThrough.serialize, responseDeserialize: passThrough.deserialize },
}, { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
await new Promise<void>((resolve, reject) => g.bindAsync(`unix:${a.grpcUds}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
const injector = g.createConnectionInjector(grpc.ServerCredentials.createInsecure());
await listen(a.grpcRingwire, { maxRingBytes: 1 << 22 }, (ch) => injector.injectConnection(createDuplex(ch)));

process.stdout.write('listening\n');
