import { strict as assert } from 'node:assert';
import { SmoothWeightedRoundRobin } from '../../src/node/gateway/weighted-choice';

describe('SmoothWeightedRoundRobin', () => {
  it('keeps any 100 consecutive picks within ±2 of the weights, for every split', () => {
    for (let a = 0; a <= 100; a++) {
      const weights = { old: 100 - a, new: a };
      const chooser = new SmoothWeightedRoundRobin(weights);
      const picks = Array.from({ length: 400 }, () => chooser.next());
      for (let start = 0; start + 100 <= picks.length; start++) {
        const window = picks.slice(start, start + 100);
        const newCount = window.filter((pick) => pick === 'new').length;
        assert.ok(Math.abs(newCount - a) <= 2, `split ${a}: window at ${start} had ${newCount}`);
      }
    }
  });

  it('spreads three-way splits exactly over one period', () => {
    const chooser = new SmoothWeightedRoundRobin({ a: 50, b: 30, c: 20 });
    for (let period = 0; period < 3; period++) {
      const tally: Record<string, number> = { a: 0, b: 0, c: 0 };
      for (let i = 0; i < 100; i++) tally[chooser.next()!]!++;
      assert.deepEqual(tally, { a: 50, b: 30, c: 20 });
    }
  });

  it('never picks zero weights and picks nothing when all are zero', () => {
    const chooser = new SmoothWeightedRoundRobin({ a: 0, b: 100 });
    assert.ok(Array.from({ length: 50 }, () => chooser.next()).every((pick) => pick === 'b'));
    assert.equal(new SmoothWeightedRoundRobin({ a: 0 }).next(), undefined);
  });
});
