/**
 * The version and commit `metal-bmc --version` prints. Run from the sources they are read from
 * the repository (package.json, `git rev-parse`); the bundle (`dist/metal-bmc.mjs`,
 * scripts/bundle.mjs) replaces this module with the values at build time.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  /** the git commit (12 hex digits, `-dirty` with uncommitted changes), or `unknown` outside a git checkout */
  commit: string;
}

export function buildInfo(): BuildInfo {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
  let version = 'unknown';
  try {
    version = String((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    // not in the repository: the version stays unknown
  }
  return { version, commit: gitCommit(dir) };
}

/** `git rev-parse` in `dir`, 12 digits, `-dirty` when tracked files differ from HEAD; `unknown` without git. */
export function gitCommit(dir: string): string {
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
  try {
    const commit = git('rev-parse', '--short=12', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return `${commit}${dirty ? '-dirty' : ''}`;
  } catch {
    return 'unknown';
  }
}
