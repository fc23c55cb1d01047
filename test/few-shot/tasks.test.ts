import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/core/rng.js';
import { ArrayDataset, FewShotTaskSource, chooseClasses, chooseShots, loadExamples, remapLabels, rotateSquare, subsetClasses, withRotations } from '../../src/tasks/labeled.js';

// Every example's pixels encode (class, index): value = class * 100 + index, so a loaded example
// tells which one it was.
function codedDataset(classes: number, perClass: number | number[]): ArrayDataset {
  const counts = Array.from({ length: classes }, (_, c) => (Array.isArray(perClass) ? perClass[c]! : perClass));
  const pixels = new Float32Array(counts.reduce((a, b) => a + b, 0) * 4);
  let o = 0;
  counts.forEach((n, c) => {
    for (let i = 0; i < n; i++) for (let k = 0; k < 4; k++) pixels[o++] = c * 100 + i;
  });
  return new ArrayDataset({ inputShape: [2, 2, 1], pixels, counts });
}

describe('N-way K-shot tasks', () => {
  it('every sampled task has exactly N classes × K shots, labels 0..N−1, distinct examples, support and query disjoint', () => {
    const ds = codedDataset(12, 7);
    for (const [classes, shots] of [[5, 1], [5, 5], [3, 6], [12, 2]] as const) {
      const source = new FewShotTaskSource({ dataset: ds, classes, shots });
      for (let t = 0; t < 200; t++) {
        const task = source.sample(Rng.derive(9, t));
        expect(task.numClasses).toBe(classes);
        expect(task.support.count).toBe(classes * shots);
        expect(task.query.count).toBe(classes);
        const codes = new Set<number>();
        const classOfLabel = new Map<number, number>();
        for (const set of [task.support, task.query]) {
          for (let i = 0; i < set.count; i++) {
            const label = set.targets[i]!;
            expect(Number.isInteger(label) && label >= 0 && label < classes).toBe(true);
            const code = set.inputs[i * 4]!;
            codes.add(code);
            const cls = Math.floor(code / 100);
            // One dataset class per label, and one label per dataset class.
            expect(classOfLabel.get(label) ?? cls).toBe(cls);
            classOfLabel.set(label, cls);
          }
        }
        expect(codes.size).toBe(classes * (shots + 1));
        expect(new Set(classOfLabel.values()).size).toBe(classes);
        for (let l = 0; l < classes; l++) expect(Array.from(task.support.targets).filter((x) => x === l)).toHaveLength(shots);
      }
    }
  });

  it('training tasks have trainShots support examples per class and no query', () => {
    const source = new FewShotTaskSource({ dataset: codedDataset(8, 12), classes: 5, shots: 1, trainShots: 10 });
    const task = source.sample(Rng.derive(1));
    expect(task.support.count).toBe(50);
    expect(task.query.count).toBe(0);
  });

  it('a task is a pure function of the generator handed to it', () => {
    const source = new FewShotTaskSource({ dataset: codedDataset(10, 5), classes: 4, shots: 2 });
    const a = source.sample(Rng.derive(3, 7));
    const b = source.sample(Rng.derive(3, 7));
    const c = source.sample(Rng.derive(3, 8));
    expect(Array.from(a.support.inputs)).toEqual(Array.from(b.support.inputs));
    expect(Array.from(a.query.inputs)).toEqual(Array.from(b.query.inputs));
    expect(Array.from(a.support.inputs)).not.toEqual(Array.from(c.support.inputs));
  });

  it('the small steps compose: classes, shots without replacement, remapped labels, loaded pixels', () => {
    const ds = codedDataset(6, 3);
    const rng = Rng.derive(5);
    const classes = chooseClasses(rng, ds, 3);
    expect(new Set(classes).size).toBe(3);
    const groups = chooseShots(rng, ds, classes, 3);
    groups.forEach((g, i) => {
      expect(g.every((p) => p.cls === classes[i])).toBe(true);
      expect(new Set(g.map((p) => p.index))).toEqual(new Set([0, 1, 2]));
    });
    const remapped = remapLabels(groups);
    remapped.forEach((g, i) => expect(g.every((p) => p.label === i)).toBe(true));
    const ex = loadExamples(ds, remapped.flat());
    expect(ex.inputs[0]).toBe(classes[0]! * 100 + remapped[0]![0]!.index);
  });

  it('refuses tasks the dataset cannot supply', () => {
    // Too many classes is caught when the source is built, before any task is drawn.
    expect(() => new FewShotTaskSource({ dataset: codedDataset(4, 5), classes: 5, shots: 1 })).toThrow(/`classes` is 5 but the dataset has 4 classes/);
    expect(() => chooseClasses(Rng.derive(0), codedDataset(4, 5), 5)).toThrow(/cannot draw 5 classes from a dataset of 4/);
    expect(() => new FewShotTaskSource({ dataset: codedDataset(5, [6, 6, 6, 2, 6]), classes: 5, shots: 2 }).sample(Rng.derive(0))).toThrow(/has 2 examples, fewer than the 3/);
    expect(() => new FewShotTaskSource({ dataset: codedDataset(5, 5), classes: 0, shots: 1 })).toThrow(/`classes` must be a whole number/);
  });
});

describe('class subsets and rotations', () => {
  it('subsetClasses renumbers the chosen classes', () => {
    const sub = subsetClasses(codedDataset(6, 2), [4, 1]);
    const out = new Float32Array(4);
    sub.load(0, 1, out, 0);
    expect(out[0]).toBe(401);
    sub.load(1, 0, out, 0);
    expect(out[0]).toBe(100);
    expect(() => subsetClasses(codedDataset(2, 2), [2])).toThrow(/class 2 of `indices` is not in the dataset/);
  });

  it('rotations are exact counter-clockwise quarter turns', () => {
    // 3×3 image 1 2 3 / 4 5 6 / 7 8 9; turned 90° counter-clockwise it reads 3 6 9 / 2 5 8 / 1 4 7.
    const img = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const out = new Float32Array(9);
    rotateSquare(img, 0, 3, 1, out, 0);
    expect(Array.from(out)).toEqual([3, 6, 9, 2, 5, 8, 1, 4, 7]);
    rotateSquare(img, 0, 3, 2, out, 0);
    expect(Array.from(out)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
    rotateSquare(img, 0, 3, 3, out, 0);
    expect(Array.from(out)).toEqual([7, 4, 1, 8, 5, 2, 9, 6, 3]);
    rotateSquare(img, 0, 3, 0, out, 0);
    expect(Array.from(out)).toEqual(Array.from(img));
  });

  it('withRotations makes four classes per class; four quarter turns give back the image', () => {
    const side = 5;
    const pixels = Float32Array.from({ length: 2 * side * side }, (_, i) => i);
    const base = new ArrayDataset({ inputShape: [side, side, 1], pixels, counts: [1, 1] });
    const rotated = withRotations(base);
    expect(rotated.numClasses).toBe(8);
    expect(rotated.countOf(7)).toBe(1);
    const orig = new Float32Array(side * side);
    const r = new Float32Array(side * side);
    base.load(1, 0, orig, 0);
    for (let q = 0; q < 4; q++) {
      rotated.load(4 + q, 0, r, 0);
      // Turn back by (4 − q) more quarter turns: must equal the original exactly.
      const back = new Float32Array(side * side);
      rotateSquare(r, 0, side, 4 - q, back, 0);
      expect(Array.from(back)).toEqual(Array.from(orig));
      if (q > 0) expect(Array.from(r)).not.toEqual(Array.from(orig));
      // A pixel check by hand: the top-left of a 90° counter-clockwise turn is the top-right of the original.
      if (q === 1) expect(r[0]).toBe(orig[side - 1]);
    }
    expect(rotated.className(5)).toBe('class1@90');
    expect(() => withRotations(new ArrayDataset({ inputShape: [2, 3, 1], pixels: new Float32Array(6), counts: [1] }))).toThrow(/square single-channel/);
  });
});
