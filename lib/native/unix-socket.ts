/**
 * UNIX domain sockets that carry file descriptors (SCM_RIGHTS), on the libuv loop.
 *
 * Two types: 'seqpacket' (ringwire's handshake: each send is one message, each 'message' event one
 * message) and 'stream' (the ivshmem-server and vhost-user protocols: each 'message' is one
 * recvmsg's chunk of bytes with whatever fds arrived with it; the caller frames).
 *
 * Concurrency contract: an FdSocket or FdServer belongs to the thread that created it. Events are
 * emitted on that thread's event loop; 'error' (at most once) is always followed by 'close' (exactly
 * once), both asynchronously.
 *
 * Fd ownership: fds passed to send() stay the caller's (they are duplicated if the message must be
 * queued). Fds delivered by 'message' belong to the listener, are close-on-exec, and are closed by
 * nobody else; fds that arrive with a truncated message are closed and the socket fails with
 * ERR_MSG_TRUNCATED.
 *
 * This module is the public face; the pieces live in unix-socket-options.ts (address and options),
 * fd-socket.ts with fd-socket-outbox.ts and fd-socket-inbox.ts (a connection, its send and receive
 * sides), fd-server.ts (the listener) and unix-socket-sys.ts (errno values and fd helpers).
 */
export { encodeAddress, MAX_FDS, type ConnectOptions, type FdSocketOptions, type ListenOptions, type SocketType } from './unix-socket-options.js';
export { FdSocket, type PeerCred } from './fd-socket.js';
export { FdServer } from './fd-server.js';
