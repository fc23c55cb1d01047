#!/usr/bin/env node
/* global process, setTimeout */
// A delay-and-drop TCP proxy for network faults where the kernel has no netem:
//   node bench/hosts-proxy.mjs LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT
// forwards every connection to the target. Commands, one a line on stdin, `<n> <command>`,
// each answered by `ok <n> …` on stdout:
//   delay MIN MAX   every chunk, each way, waits a uniform draw in [MIN, MAX] ms (order kept)
//   stall MS        nothing moves either way for MS ms, then everything held is delivered
//   drop            every open connection is reset (`ok <n> <count>`)
import { randomInt } from 'node:crypto';
import * as net from 'node:net';
import * as readline from 'node:readline';

const [listenHost, listenPort, targetHost, targetPort] = process.argv.slice(2);
if (targetPort === undefined) {
  process.stderr.write('usage: hosts-proxy.mjs LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT\n');
  process.exit(2);
}

let delayMin = 0;
let delayMax = 0;
let stalledUntil = 0;
const open = new Set();

/**
 * A one-way pipe that delivers each chunk after its delay, in order: chunks wait in a queue that
 * one timer drains (timers of different lengths may fire in any order when they fall due together).
 */
function pipe(from, to) {
  const queue = [];
  let timer;
  let last = 0;
  const drain = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length > 0 && queue[0].at <= now && stalledUntil <= now) {
      const { chunk } = queue.shift();
      if (!to.destroyed) to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(drain, Math.max(1, Math.max(queue[0].at, stalledUntil) - now));
  };
  from.on('data', (chunk) => {
    const now = Date.now();
    const wait = delayMax > 0 ? randomInt(delayMin, delayMax + 1) : 0;
    last = Math.max(now + wait, last);
    queue.push({ at: last, chunk });
    if (timer === undefined) drain();
  });
}

const server = net.createServer((client) => {
  const upstream = net.connect(Number(targetPort), targetHost);
  const pair = { client, upstream };
  open.add(pair);
  for (const s of [client, upstream]) {
    s.setNoDelay(true);
    s.on('error', () => {});
    s.on('close', () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    });
  }
  pipe(client, upstream);
  pipe(upstream, client);
});

server.listen(Number(listenPort), listenHost, () => process.stdout.write(`ready ${listenHost}:${listenPort} -> ${targetHost}:${targetPort}\n`));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [n, command, a, b] = line.trim().split(/\s+/);
  if (command === 'delay') {
    delayMin = Number(a);
    delayMax = Number(b);
    process.stdout.write(`ok ${n} delay ${delayMin} ${delayMax}\n`);
  } else if (command === 'stall') {
    stalledUntil = Date.now() + Number(a);
    process.stdout.write(`ok ${n} stall ${a}\n`);
  } else if (command === 'drop') {
    const count = open.size;
    for (const { client, upstream } of open) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    open.clear();
    process.stdout.write(`ok ${n} ${count}\n`);
  } else {
    process.stdout.write(`error ${n} unknown command ${command}\n`);
  }
});
process.stdin.on('end', () => process.exit(0));
