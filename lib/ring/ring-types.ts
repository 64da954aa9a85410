/** Shapes shared by the SPSC and MPSC rings, so channels and transports take either. */
import type { Doorbell } from './doorbell.js';
import type { WaitOptions } from './wait.js';

export interface RingOptions {
  /** Rung by the producer when the consumer sleeps; the consumer parks on it. */
  dataBell?: Doorbell;
  /** Rung by the consumer when a producer waits for space; producers park on it. */
  spaceBell?: Doorbell;
  /** Polls before parking, for waits that do not pass their own. */
  spin?: number;
}

export interface ProducerStats {
  messages: number;
  bytes: number;
  /** Commits after which the consumer was asleep, so the data bell rang. */
  doorbellsRung: number;
  /** Commits that found the consumer awake and so did not ring. */
  doorbellsSuppressed: number;
  /** Times a producer had to wait because the ring was full. */
  fullWaits: number;
}

export interface ConsumerStats {
  messages: number;
  bytes: number;
  /** Releases after which a producer was waiting, so the space bell rang. */
  doorbellsRung: number;
  doorbellsSuppressed: number;
  /** Times the consumer parked on the data bell. */
  parks: number;
  /** MPSC: records a dead or stalled producer reserved and never committed, skipped after the timeout. */
  abandoned: number;
}

/** Called once per record by drain(); `data` is the ring's whole data area, valid until drain returns. */
export type RecordCallback = (data: Uint8Array, offset: number, length: number, type: number) => void;

export interface RingProducer {
  readonly data: Uint8Array;
  readonly capacity: number;
  readonly maxMessageSize: number;
  claim(length: number, type?: number): number;
  commit(): void;
  send(bytes: Uint8Array, type?: number): boolean;
  sendAsync(bytes: Uint8Array, type?: number, opts?: WaitOptions): Promise<void>;
  waitForSpace(length: number, opts?: WaitOptions): Promise<boolean>;
  /** Blocking waitForSpace, for worker threads and processes that own their thread. */
  waitForSpaceSync(length: number, timeoutMs?: number): boolean;
  stats(): ProducerStats;
}

export interface RingConsumer {
  readonly data: Uint8Array;
  readonly capacity: number;
  /** Offset, length and type of the record the last successful read() returned. */
  readonly offset: number;
  readonly length: number;
  readonly type: number;
  read(): number;
  view(): Uint8Array;
  release(): void;
  receive(): Uint8Array | null;
  drain(fn: RecordCallback, max?: number): number;
  available(): boolean;
  waitForData(opts?: WaitOptions): Promise<boolean>;
  /** Blocking waitForData, for worker threads and processes that own their thread. */
  waitForDataSync(timeoutMs?: number): boolean;
  stats(): ConsumerStats;
}
