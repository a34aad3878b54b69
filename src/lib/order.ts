/**
 * The one order of ids and keys everywhere: by Unicode code point, which is the
 * byte order of their UTF-8 form and so SQLite's and PostgreSQL's (`COLLATE "C"`)
 * binary order. JavaScript's `<` on strings compares UTF-16 code units, which
 * disagrees for characters above U+FFFF against U+E000–U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    const x = a.charCodeAt(index);
    const y = b.charCodeAt(index);
    if (x === y) continue;
    // Both below the surrogates, or both surrogates: code units order as code points.
    const xSurrogate = x >= 0xd800 && x <= 0xdfff;
    const ySurrogate = y >= 0xd800 && y <= 0xdfff;
    if (xSurrogate === ySurrogate) return x - y;
    // A surrogate starts a code point above U+FFFF, after every other BMP character.
    return xSurrogate ? 1 : -1;
  }
  return a.length - b.length;
}
