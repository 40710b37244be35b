import assert from 'node:assert/strict';
import { mcnemarExact } from '../bench/sweep-paired';

describe('bench/sweep-paired McNemar exact test', () => {
  it('is the two-sided binomial(n, 1/2) tail of the discordant pairs', () => {
    assert.equal(mcnemarExact(0, 10), 2 / 1024); // 2 * 0.5^10
    assert.ok(Math.abs(mcnemarExact(5, 15) - 0.041389465) < 1e-9); // scipy.stats.binomtest(5, 20).pvalue
    assert.equal(mcnemarExact(15, 5), mcnemarExact(5, 15));
    assert.equal(mcnemarExact(0, 0), 1);
    assert.equal(mcnemarExact(300, 300), 1);
    // Large counts stay finite (log-space binomial coefficients): the bench's 284 against 297 images.
    assert.ok(Math.abs(mcnemarExact(284, 297) - 0.618632065) < 1e-8);
  });
});
