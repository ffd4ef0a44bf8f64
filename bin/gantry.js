#!/usr/bin/env node
// The gantry CLI; the TypeScript is compiled into dist/ by `npm install`.
require('../dist/src/cli/main.js').main();
