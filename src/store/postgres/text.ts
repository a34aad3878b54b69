/**
 * Strings PostgreSQL text can hold. PostgreSQL refuses NUL in text (and in jsonb),
 * but tag keys and values and addresses may contain it, and the memory store keeps
 * them exactly. Columns that hold such strings raw store `encodeText(s)`: NUL
 * becomes U+0001 U+0001 and U+0001 becomes U+0001 U+0002; everything else is
 * unchanged.
 *
 * Invariants (tested in text.test.ts):
 *  T1  `decodeText(encodeText(s)) === s`, and the encoding holds no NUL.
 *  T2  It keeps code-point order: the code words {0001 0001, 0001 0002, c ≥ 0002}
 *      are prefix-free and ordered as the characters they replace, so
 *      `compareCodePoints(a, b)` and the encoded comparison have the same sign.
 *  T3  It keeps prefixes: `s.startsWith(p)` iff `encodeText(s).startsWith(encodeText(p))`.
 */
const NUL = "\u0000";
const ESCAPE = "\u0001";

export function encodeText(text: string): string {
  if (!text.includes(NUL) && !text.includes(ESCAPE)) return text;
  let encoded = "";
  for (const character of text) {
    if (character === NUL) encoded += `${ESCAPE}${ESCAPE}`;
    else if (character === ESCAPE) encoded += `${ESCAPE}\u0002`;
    else encoded += character;
  }
  return encoded;
}

export function decodeText(text: string): string {
  if (!text.includes(ESCAPE)) return text;
  let decoded = "";
  for (let index = 0; index < text.length; index += 1) {
    const character = text[index];
    if (character !== ESCAPE) {
      decoded += character;
      continue;
    }
    index += 1;
    decoded += text[index] === ESCAPE ? NUL : ESCAPE;
  }
  return decoded;
}

/** A tag map with every key and value encoded, as JSON for a `jsonb` parameter. */
export function encodedTagsJson(tags: Record<string, string>): string {
  return JSON.stringify(
    Object.fromEntries(Object.entries(tags).map(([key, value]) => [encodeText(key), encodeText(value)])),
  );
}
