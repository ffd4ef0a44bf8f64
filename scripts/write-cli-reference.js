#!/usr/bin/env node
/**
 * `npm run docs:cli`: writes docs/cli-reference.md from the command definitions (compiled into
 * dist/ by the same npm script first). test/unit/cli-reference.test.ts fails when the committed
 * file differs from what this writes.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { buildProgram } = require('../dist/src/cli/main.js');
const { CLI_REFERENCE_FILE, renderCliReference } = require('../dist/src/cli/reference.js');

const file = path.join(__dirname, '..', CLI_REFERENCE_FILE);
fs.writeFileSync(file, renderCliReference(buildProgram()));
console.log(`wrote ${CLI_REFERENCE_FILE}`);
