#!/usr/bin/env node
// Entry point of the `condense` binary.

import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2));
