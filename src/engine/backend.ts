import * as tf from '@tensorflow/tfjs';
import { checkChoice } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';
import { registerWasmConvKernels } from './wasm-kernels.js';

/** Backends a user can ask for; `auto` picks the fastest one that loads. */
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

let announced = false;

/**
 * Selects the tfjs backend: `@tensorflow/tfjs-node` ("tensorflow") when the user has installed it,
 * else `@tensorflow/tfjs-backend-wasm` when it is installed, else the pure-JS cpu backend. Returns
 * the backend's name; with `log`, says once which one runs and why.
 */
export async function selectBackend(choice: BackendChoice = 'auto', log?: (line: string) => void): Promise<string> {
  checkChoice('backend', choice, ['auto', 'tensorflow', 'wasm', 'cpu']);
  const order: Exclude<BackendChoice, 'auto'>[] = choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice];
  const failures: string[] = [];
  for (const name of order) {
    const why = await tryBackend(name);
    if (why === undefined) {
      silenceCpuBanner();
      if (log && !announced) {
        announced = true;
        const note = failures.length > 0 ? ` (${failures.join('; ')})` : '';
        log(`tfjs backend: ${name}${note}`);
      }
      return name;
    }
    failures.push(`${name}: ${why}`);
  }
  throw new InvalidOptionsError(`tfjs backend '${choice}' is not available (${failures.join('; ')}): install it, or set \`backend\` to 'auto'`, { option: 'backend' });
}

async function tryBackend(name: Exclude<BackendChoice, 'auto'>): Promise<string | undefined> {
  if (tf.getBackend() === name) return undefined;
  try {
    if (name === 'tensorflow') await import(/* optional */ '@tensorflow/tfjs-node' as string);
    if (name === 'wasm') {
      await import(/* optional */ '@tensorflow/tfjs-backend-wasm' as string);
      registerWasmConvKernels();
    }
  } catch (e) {
    return importFailure(e, name === 'tensorflow' ? '@tensorflow/tfjs-node' : '@tensorflow/tfjs-backend-wasm');
  }
  try {
    const ok = await tf.setBackend(name);
    await tf.ready();
    return ok ? undefined : 'failed to initialise';
  } catch (e) {
    return `failed to initialise: ${(e as Error).message}`;
  }
}

// "not installed" only when the package itself is missing; a package that is there but fails to
// load (a missing libtensorflow, an ABI mismatch) says why, so the user can fix it.
function importFailure(e: unknown, pkg: string): string {
  const err = e as NodeJS.ErrnoException;
  const missing = (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') && String(err.message).includes(`'${pkg}'`) && !String(err.message).includes(`${pkg}/`);
  if (missing) return 'not installed';
  return `installed but failed to load: ${String(err.message ?? e).split('\n')[0]}`;
}

// The cpu backend prints a multi-line advertisement on first use in Node; the choice of backend
// is already reported in one line above.
function silenceCpuBanner(): void {
  const backend = tf.backend() as unknown as { firstUse?: boolean };
  if (backend.firstUse === true) backend.firstUse = false;
}
