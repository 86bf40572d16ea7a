// bpe_table.js: writes tests/bpe_table.h, the (text, GPT-2 token ids) cases that
// tests/test_bpe.c compares src/bpe.c with. The ids come from two GPT-2 BPE
// implementations independent of this project, which must agree on every case:
// npm gpt-3-encoder 1.1.4 (a JavaScript port of OpenAI's encoder.py) and npm
// gpt-tokenizer (its "gpt2" encoding, a tiktoken-style implementation).
// Not run by `make test`. To regenerate (node >= 18, npm registry reachable):
//   mkdir -p /tmp/bpejs && (cd /tmp/bpejs && npm install gpt-3-encoder@1.1.4 gpt-tokenizer@4.0.0)
//   NODE_PATH=/tmp/bpejs/node_modules node tests/bpe_table.js > tests/bpe_table.h
'use strict';
const g3 = require('gpt-3-encoder');
const gt = require('gpt-tokenizer/cjs/encoding/gpt2');
const fs = require('fs');
const path = require('path');

const moby = fs.readFileSync(path.join(__dirname, '..', 'data', 'corpus', 'moby-dick.txt'), 'utf8');
const cases = [
  // contractions (lower case only in the pattern: "'S" is not one)
  "it's we're they've I'm you'll he'd don't can't",
  "IT'S We'Re 'tis rock'n'roll o'clock",
  "''s 's's 'll'll",
  // whitespace runs: the last space of a run joins the next word
  "a  b   c    d",
  "trailing spaces   ",
  "   leading spaces",
  "\n\n\nthree newlines\n\n",
  " \t \n mixed",
  // CRLF and tabs
  "line one\r\nline two\r\n\r\nline four",
  "col1\tcol2\t\tcol3\n\tindented",
  // digits
  "1 12 123 1234 12345 3.14159 1,000,000 2024-01-15 0x1F",
  "x2 2x 10% $5.00 #1",
  // punctuation
  "Hello, world! (yes) [no] {maybe}... --- ?!? \"quoted\" 'single'",
  "a.b,c;d:e/f\\g|h@i#j$k%l^m&n*o+p=q<r>s~t`u",
  "<|endoftext|> is text here",
  // non-Latin scripts
  "Привет, мир! Это тест.",
  "日本語のテキストです。中文文本。",
  "한국어 텍스트",
  "مرحبا بالعالم",
  "שלום עולם",
  "Γειά σου Κόσμε",
  "हिन्दी पाठ",
  "ภาษาไทย",
  // combining marks (letters followed by Mn: \p{L}+ stops there)
  "e\u0301 cafe\u0301 nai\u0308ve",
  "a\u0300\u0301\u0302 Z\u0351\u036b\u0343",
  "café naïve résumé Ångström",
  // emoji, including sequences
  "👍 👍🏽 👨‍👩‍👧 🇫🇷 ❤️ 🙂🙂🙂",
  "emoji👍inside",
  // other whitespace and format characters
  "a\u00a0b non\u00a0breaking",
  "ideographic\u3000space",
  "x\u2028y\u2029z",
  "zero\u200bwidth",
  // long pieces: a 400-letter word, a 300-space run, 200 digits
  "supercalifragilistic".repeat(20),
  "a" + " ".repeat(300) + "b",
  "1234567890".repeat(20),
  // 3,000 pseudo-random letters (a fixed LCG): one piece, merged with the heap
  (() => { let x = 12345, o = ''; for (let i = 0; i < 3000; i++) { x = (x * 1103515245 + 12345) % 2147483648; o += 'abcdefghijklmnopqrstuvwxyzAEIOU'[x % 31]; } return o; })(),
  // a paragraph of real text (Moby-Dick's first chapter, 2,000 characters)
  moby.slice(moby.indexOf('Call me Ishmael'), moby.indexOf('Call me Ishmael') + 2000),
  "",
];

function cstr(s) {
  const b = Buffer.from(s, 'utf8');
  let out = '"', col = 0;
  for (const c of b) {
    let e;
    if (c === 0x22) e = '\\"';
    else if (c === 0x5c) e = '\\\\';
    else if (c >= 0x20 && c < 0x7f && c !== 0x3f) e = String.fromCharCode(c);   // '?' escaped: no trigraphs
    else e = '\\' + c.toString(8).padStart(3, '0');
    out += e;
    col += e.length;
    if (col > 90) { out += '"\n     "'; col = 0; }
  }
  return out + '"';
}

let body = '';
for (const s of cases) {
  const a = g3.encode(s);
  const b = gt.encode(s, { allowedSpecial: new Set(), disallowedSpecial: new Set() });
  if (a.join(' ') !== b.join(' ')) {
    process.stderr.write('the two tokenizers disagree on ' + JSON.stringify(s) + ':\n  ' + a.join(' ') + '\n  ' + b.join(' ') + '\n');
    process.exit(1);
  }
  if (g3.decode(a) !== s) { process.stderr.write('no round trip: ' + JSON.stringify(s) + '\n'); process.exit(1); }
  body += '    {' + cstr(s) + ',\n     ' + Buffer.byteLength(s, 'utf8') + ', "' + a.join(' ') + '"},\n';
}
process.stdout.write(
  '/* bpe_table.h: GPT-2 token ids of test texts, written by tests/bpe_table.js\n' +
  ' * (npm gpt-3-encoder 1.1.4 and gpt-tokenizer 4.0.0, which agree on every case).\n' +
  ' * Regenerate with the command at the top of that script; do not edit by hand. */\n' +
  'static const struct { const char *text; size_t len; const char *ids; } bpe_table[] = {\n' + body + '};\n');
