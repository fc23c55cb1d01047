import * as tf from '@tensorflow/tfjs';

/**
 * The tfjs backend of the demos: the pure-JS cpu backend. The networks are small (a 1-64-64-1 MLP,
 * a batch of at most a few dozen examples), where a GPU backend's per-kernel overhead costs more
 * than it saves, and the cpu backend gives the same numbers in every browser.
 */
export async function useCpuBackend(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}

/**
 * Loads a TF.js LayersModel, turning every failure (missing file, not a model, bad weights) into
 * one sentence that says where it looked and how to make the file.
 */
export async function loadModel(url: string, makeWith: string): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(url);
  } catch (e) {
    const why = (e as Error).message.split('\n')[0] ?? String(e);
    throw new Error(`could not load the model at ${url} (${why}); make it with: ${makeWith}`, { cause: e });
  }
}

/** Reads a JSON file next to a model, with the same kind of message as `loadModel`. */
export async function loadJson<T>(url: string, makeWith: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`could not fetch ${url} (${(e as Error).message}); make it with: ${makeWith}`, { cause: e });
  }
  if (!response.ok) throw new Error(`could not load ${url} (HTTP ${response.status}); make it with: ${makeWith}`);
  return (await response.json()) as T;
}

/** Lets the browser paint and handle input between two steps of work on the main thread. */
export function yieldToBrowser(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
