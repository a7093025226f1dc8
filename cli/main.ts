#!/usr/bin/env node
// Entry point of the `condense` binary.

import { rerunWithHugePages } from './huge-pages.js';

// Before the library loads (hence the dynamic import below, which a static one would parse and
// link first): measuring commands re-run themselves on huge pages (huge-pages.ts).
rerunWithHugePages(process.argv.slice(2));
const { runCli } = await import('./program.js');

process.exitCode = await runCli(process.argv.slice(2));
