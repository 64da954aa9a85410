/**
 * How a channel uses the ring's per-record type word (31 user bits): the frame kind in bits 0-3,
 * the request correlation id in bits 4-30. Data and End carry id 0.
 */
export const Kind = {
  Data: 1,
  Request: 2,
  Response: 3,
  ErrorResponse: 4,
  End: 5,
  /** A message larger than one record follows: the payload is its total length (u32 LE). */
  LargeStart: 6,
  /** The next piece of that message, in order, until the total is reached. */
  LargePart: 7,
} as const;

const KIND_BITS = 4;
const KIND_MASK = (1 << KIND_BITS) - 1;
export const MAX_REQUEST_ID = 2 ** (31 - KIND_BITS) - 1;

export function recordType(kind: number, id: number): number {
  return kind | (id << KIND_BITS);
}

export function kindOf(type: number): number {
  return type & KIND_MASK;
}

export function idOf(type: number): number {
  return type >>> KIND_BITS;
}
