/**
 * A channel client that runs the handshake correctly up to a chosen step and then dies abruptly:
 * its socket and every fd it holds closed at once, no Disconnect, which is what the kernel does
 * for a SIGKILLed process. Used by test 93 (hundreds per step) and by the soak.
 */
import { FdSocket } from '../../lib/native/unix-socket.js';
import { RingSet, FrameQueue } from '../../lib/channel/handshake.js';
import { AckView, Msg, encodeConnect, encodeInit, type Frame } from '../../lib/channel/protocol.js';

/** Where a peer dies: right after the named event. */
export const HANDSHAKE_STEPS = [
  'connected-socket', // before reading Hello
  'hello', // read Hello, sent nothing
  'init-sent', // Init sent, Ack not read
  'init-acked',
  'one-addring-sent',
  'addrings-sent', // both announcements out, the server's not answered
  'exchange-done', // every block known both ways, Connect not sent
  'connect-sent', // Connect sent, Connected not read (issue 19's eventfd leak)
  'channel-open', // Connected read
] as const;
export type HandshakeStep = (typeof HANDSHAKE_STEPS)[number];

/**
 * Runs the client side up to `dieAt`, then dies. `linger` picks how long it waits first: 0 not at
 * all, 1 one loop turn, n > 1 n - 1 ms, so the death lands before, during and after the server's
 * next step. Resolves once dead; a refusal or timeout from the server along the way is not an error.
 */
export async function dyingPeer(address: string, dieAt: HandshakeStep, linger: number, ringBytes = 4096): Promise<void> {
  const sock = await FdSocket.connect(address, { maxMessageSize: 512, maxFds: 2 });
  sock.on('error', () => {});
  const frames = new FrameQueue(sock, 5000);
  let rings: RingSet | undefined;
  const die = async (): Promise<void> => {
    if (linger === 1) await new Promise((r) => setImmediate(r));
    else if (linger > 1) await new Promise((r) => setTimeout(r, linger - 1));
    frames.dispose();
    rings?.dispose();
    sock.close();
  };
  const expect = async (type: number): Promise<Frame> => {
    const f = await frames.next('the server');
    if (f.type !== type) throw Object.assign(new Error(`expected message ${type}, got ${f.type}`), { code: 'UNEXPECTED' });
    return f;
  };
  try {
    if (dieAt === 'connected-socket') return await die();
    await expect(Msg.Hello);
    if (dieAt === 'hello') return await die();
    sock.send(encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: ringBytes, serverToClientBytes: ringBytes, name: 'dying', secret: new Uint8Array(0) }));
    if (dieAt === 'init-sent') return await die();
    const ack = await expect(Msg.Ack);
    if (new AckView(ack.body).ackedType !== Msg.Init) throw new Error('the Ack is not for Init');
    if (dieAt === 'init-acked') return await die();
    rings = new RingSet('client', ringBytes, ringBytes);
    const [first, second] = rings.announcements();
    sock.send(first!.data, first!.fds);
    if (dieAt === 'one-addring-sent') return await die();
    sock.send(second!.data, second!.fds);
    if (dieAt === 'addrings-sent') return await die();
    while (!rings.complete) {
      const g = await frames.next('the server');
      if (g.type === Msg.AddRing) sock.send(rings.acceptPeerBlock(g));
      else if (g.type === Msg.Ack) rings.acceptAck(g);
      else throw new Error(`unexpected message ${g.type}`);
    }
    if (dieAt === 'exchange-done') return await die();
    sock.send(encodeConnect());
    if (dieAt === 'connect-sent') return await die();
    await expect(Msg.Connected);
    return await die();
  } catch (err) {
    await die();
    // The server may refuse or drop a peer racing its own death: that is not a failure here.
    if ((err as { code?: string }).code === undefined) throw err;
  }
}
