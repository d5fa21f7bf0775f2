// include/bayeux.h is the documentation of libbayeux: every function it declares has a
// comment right above it, and the shared library a program links exports every one.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {REPO} from './lib/daemon.mjs';

const header = fs.readFileSync(path.join(REPO, 'include', 'bayeux.h'), 'utf8');

/** [{name, line}] of every function prototype (top-level lines naming bx_…( ). */
function prototypes() {
  const lines = header.split('\n');
  const out = [];
  let depth = 0; // inside struct/enum braces
  let inComment = false;
  lines.forEach((l, i) => {
    // The line without its comments (a comment may open or close on it).
    let code = l;
    if (inComment) {
      const end = code.indexOf('*/');
      if (end < 0) code = '';
      else {
        code = code.slice(end + 2);
        inComment = false;
      }
    }
    code = code.replace(/\/\*.*?\*\//g, '');
    const open = code.indexOf('/*');
    if (open >= 0) {
      code = code.slice(0, open);
      inComment = true;
    }
    if (depth === 0 && !/^\s/.test(code) && !code.startsWith('typedef') &&
        !code.startsWith('#')) {
      const m = /\b(bx_\w+)\s*\(/.exec(code);
      if (m) out.push({name: m[1], line: i});
    }
    depth += (code.match(/{/g) || []).length - (code.match(/}/g) || []).length;
    if (/^extern "C"/.test(code.trim())) depth = 0;
  });
  return {lines, out};
}

test('every function declared in bayeux.h has a comment right above it', () => {
  const {lines, out} = prototypes();
  assert.ok(out.length >= 20, `found only ${out.length} functions: ${out.map((f) => f.name)}`);
  const undocumented = out.filter(({line}) => !/\*\/\s*$/.test(lines[line - 1] || ''))
    .map((f) => f.name);
  assert.deepEqual(undocumented, [], 'functions without a comment above them');
});

test('libbayeux.so exports every function of bayeux.h', (t) => {
  // In a build folder of its own (BAYEUXD=<build>/src/bayeuxd) the library sits there.
  const dirs = [process.env.BAYEUXD && path.resolve(path.dirname(process.env.BAYEUXD), '..'), REPO]
    .filter(Boolean);
  const so = dirs.map((d) => path.join(d, '.libs', 'libbayeux.so')).find((p) => fs.existsSync(p));
  if (!so) {
    t.skip('libbayeux.so not built');
    return;
  }
  let syms;
  try {
    syms = execFileSync('nm', ['-D', '--defined-only', so], {encoding: 'utf8'});
  } catch (e) {
    t.skip(`nm not available: ${e.message}`);
    return;
  }
  const exported = new Set(syms.split('\n').map((l) => l.trim().split(/\s+/).pop()));
  const missing = prototypes().out.map((f) => f.name).filter((n) => !exported.has(n));
  assert.deepEqual(missing, [], `declared in bayeux.h but not exported by ${so}`);
});
