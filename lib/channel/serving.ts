/**
 * Serving the peer's requests with the channel's handler. Up to MAX_HANDLERS_IN_FLIGHT async
 * handlers run at once; requests beyond that, or while no handler is set, are held, bounded by
 * count and bytes, so a peer cannot park ring-sized copies here.
 */
import { ringwireError } from '../errors.js';
import { Kind } from './records.js';
import type { ChannelState } from './state.js';

/**
 * Requests received but not started (no handler yet, or MAX_HANDLERS_IN_FLIGHT running), by count
 * and by bytes (at least one is always held). Beyond either, without a handler they are answered
 * with an error; with one, reading stops until handlers catch up.
 */
const UNHANDLED_LIMIT = 1024;
const UNHANDLED_BYTES = 1 << 20;
/**
 * Async handlers running at once; later requests wait in the held queue. Reading goes on meanwhile
 * (responses to this side's own requests, which a handler may be awaiting, arrive in the same ring).
 */
const MAX_HANDLERS_IN_FLIGHT = 64;

export interface ServingHooks {
  /** Sends a handler's answer (Kind.Response or Kind.ErrorResponse) for request `id`. */
  respond(kind: number, id: number, data: Uint8Array): void;
  /** The held requests changed: the channel decides again whether to read. */
  throttle(): void;
  /** A handler settled: the channel may now finish closing. */
  settled(): void;
}

/** Serves one request for the channel `C` it is handed; a throw becomes the request's rejection. */
export type Handler<C> = (request: Buffer, channel: C) => Uint8Array | Promise<Uint8Array>;

/** `C` is the channel type handlers receive (the Channel class; generic so this module need not import it). */
export class Serving<C> {
  #channel: C;
  #state: Readonly<ChannelState>;
  #hooks: ServingHooks;
  #handler: Handler<C> | undefined;
  #inFlightHandlers = 0;
  #served = 0;
  #unhandled: Array<[number, Buffer]> = [];
  #unhandledBytes = 0;

  /** `channel` is what handlers receive as their second argument. */
  constructor(channel: C, state: Readonly<ChannelState>, hooks: ServingHooks) {
    this.#channel = channel;
    this.#state = state;
    this.#hooks = hooks;
  }

  /** Requests handed to a handler so far. */
  get served(): number {
    return this.#served;
  }

  /** True while held requests exceed their bound with a handler set: reading must stop. */
  get backedUp(): boolean {
    return this.#handler !== undefined && (this.#unhandledBytes > UNHANDLED_BYTES || this.#unhandled.length >= UNHANDLED_LIMIT);
  }

  /** True while handlers run or held requests wait for the handler: the channel cannot finish yet. */
  get busy(): boolean {
    return this.#inFlightHandlers > 0 || (this.#handler !== undefined && this.#unhandled.length > 0);
  }

  setHandler(fn: Handler<C> | null): void {
    if (fn !== null && typeof fn !== 'function') throw ringwireError('ERR_INVALID_ARG', 'handler must be a function or null');
    this.#handler = fn ?? undefined;
    this.#startHeld();
  }

  serve(id: number, request: Buffer): void {
    if (this.#handler && this.#inFlightHandlers < MAX_HANDLERS_IN_FLIGHT && this.#unhandled.length === 0) {
      this.#run(this.#handler, id, request);
      return;
    }
    // Held until a handler is set or a running one settles, so one attached a little late loses nothing.
    const fits = this.#unhandled.length === 0 || (this.#unhandled.length < UNHANDLED_LIMIT && this.#unhandledBytes + request.length <= UNHANDLED_BYTES);
    if (fits || this.#handler) {
      this.#unhandled.push([id, request]);
      this.#unhandledBytes += request.length;
      this.#hooks.throttle();
    } else {
      this.#hooks.respond(Kind.ErrorResponse, id, Buffer.from('the peer serves no requests on this channel'));
    }
  }

  /** Starts held requests while a handler is set and slots are free. */
  #startHeld(): void {
    while (this.#handler && !this.#state.closed && this.#inFlightHandlers < MAX_HANDLERS_IN_FLIGHT && this.#unhandled.length > 0) {
      const [id, request] = this.#unhandled.shift()!;
      this.#unhandledBytes -= request.length;
      this.#run(this.#handler, id, request);
    }
    this.#hooks.throttle();
  }

  #run(handler: Handler<C>, id: number, request: Buffer): void {
    this.#served++;
    let result: Uint8Array | Promise<Uint8Array>;
    try {
      result = handler(request, this.#channel);
    } catch (err) {
      this.#hooks.respond(Kind.ErrorResponse, id, Buffer.from(String((err as Error)?.message ?? err)));
      return;
    }
    if (result instanceof Uint8Array) {
      this.#hooks.respond(Kind.Response, id, result);
      return;
    }
    this.#inFlightHandlers++;
    Promise.resolve(result).then(
      (value) => {
        if (value instanceof Uint8Array) this.#hooks.respond(Kind.Response, id, value);
        else this.#hooks.respond(Kind.ErrorResponse, id, Buffer.from('the handler returned something other than a Uint8Array'));
      },
      (err) => this.#hooks.respond(Kind.ErrorResponse, id, Buffer.from(String((err as Error)?.message ?? err))),
    ).finally(() => {
      this.#inFlightHandlers--;
      this.#startHeld();
      this.#hooks.settled();
    });
  }
}
