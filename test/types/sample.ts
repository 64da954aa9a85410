/** A kitchen request that uses every field kind, with multi-byte UTF-8 in several strings. */
import * as K from './kitchen.js';

export const sample: K.Request = {
  id: 123456789012345n,
  name: 'héllo wörld',
  tags: ['a', '', '€uro', '😀'],
  values: [1, -2, 2147483647, -2147483648],
  items: [{ key: 'k1', weight: 7 }, { key: 'ключ', weight: 65535 }],
  shape: { tag: 'rect', val: { x: 1.5, y: -2.25 } },
  color: K.Color.blue,
  perms: K.Perms.read | K.Perms.exec,
  nick: 'nicky',
  ok: true,
  ch: 0x1f600,
  small: -128,
  ratio: 0.5,
  status: { tag: 'err', val: 'bad thing' },
  pair: [255, -32768],
  raw: [0, 1, 254, 255],
};

/** What test/c/kitchen-echo.h does to a request. */
export function echoed(v: K.Request): unknown {
  return {
    ...v,
    id: BigInt.asUintN(64, BigInt(v.id) + 1n),
    name: v.name.replace(/[a-z]/g, (c) => c.toUpperCase()),
    values: v.values.map((x) => (x * 2) | 0),
    raw: Array.from(v.raw),
  };
}
