/* global process */
// Where node-gyp and this node's headers are, for the source build (build.mjs) and the prebuilt
// binary (prebuild.mjs) alike.
import { existsSync } from 'node:fs';
import path from 'node:path';

const prefix = path.resolve(path.dirname(process.execPath), '..');

/** npm hands its bundled node-gyp to scripts (npm_config_node_gyp); outside npm, the one beside this node. */
export function findNodeGyp() {
  return [process.env.npm_config_node_gyp, path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find((p) => p && existsSync(p));
}

/** The headers installed beside this node, which make the build work offline; undefined when absent or npm_config_nodedir is set. */
export function localNodeDir() {
  return !process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}
