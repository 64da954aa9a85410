/**
 * Channel addresses, one string per distance, so callers switch distance without changing code:
 *
 *   /run/svc.sock, ./svc.sock   a UNIX socket file (processes and containers sharing the path)
 *   @svc                        a Linux abstract socket (scoped to a network namespace)
 *   inproc://svc                worker threads of this process (rings in SharedArrayBuffers)
 *   tcp://127.0.0.1:7000        TCP, length-prefixed frames (other hosts); TLS when given certificates
 */
import { ringwireError } from '../errors.js';

export type Address =
  | { readonly kind: 'unix'; readonly path: string; readonly text: string }
  | { readonly kind: 'abstract'; readonly name: string; readonly text: string }
  | { readonly kind: 'inproc'; readonly name: string; readonly text: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly text: string };

const INPROC = 'inproc://';
const TCP = 'tcp://';

/** Parses an address string; throws ERR_INVALID_ARG / ERR_OUT_OF_RANGE with the reason. */
export function parseAddress(text: string): Address {
  if (typeof text !== 'string' || text.length === 0) {
    throw ringwireError('ERR_INVALID_ARG', 'address must be a non-empty string: a path, @name, inproc://name or tcp://host:port');
  }
  if (text.includes('\0')) throw ringwireError('ERR_INVALID_ARG', 'address must not contain NUL');
  if (text.startsWith(INPROC)) {
    const name = text.slice(INPROC.length);
    if (name.length === 0) throw ringwireError('ERR_INVALID_ARG', 'inproc address needs a name after inproc://');
    return { kind: 'inproc', name, text };
  }
  if (text.startsWith(TCP)) return parseTcp(text);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw ringwireError('ERR_INVALID_ARG', `unknown address scheme in ${JSON.stringify(text)}; use a path, @name, inproc:// or tcp://`);
  }
  if (text.startsWith('@')) {
    if (text.length === 1) throw ringwireError('ERR_INVALID_ARG', 'abstract address needs a name after @');
    return { kind: 'abstract', name: text.slice(1), text };
  }
  return { kind: 'unix', path: text, text };
}

function parseTcp(text: string): Address {
  const rest = text.slice(TCP.length);
  // [v6]:port or host:port; the port is mandatory so nobody connects to a surprise default.
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]]+)):(\d{1,5})$/.exec(rest);
  if (!m) throw ringwireError('ERR_INVALID_ARG', `tcp address must look like tcp://host:port, got ${JSON.stringify(text)}`);
  const port = Number(m[3]);
  if (port > 65535) throw ringwireError('ERR_OUT_OF_RANGE', `tcp port must be 0..65535, got ${port}`);
  return { kind: 'tcp', host: m[1] ?? m[2]!, port, text };
}

/** The FdSocket form of a UNIX address: the path, or '@name' for the abstract namespace. */
export function socketAddress(a: Address): string {
  if (a.kind === 'unix') return a.path;
  if (a.kind === 'abstract') return `@${a.name}`;
  throw ringwireError('ERR_INVALID_ARG', `${a.text} is not a UNIX socket address`);
}
