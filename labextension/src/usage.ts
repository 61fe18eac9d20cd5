/**
 * Token usage as every nbagent surface shows it. The kernel sends the numbers (the
 * `usage` event per request, `state.usage` for the session); this module formats them
 * by the definitions in tests/fixtures/usage_format.json, the ones the Python surfaces
 * use, and a test runs it in Node over every case of that file:
 *
 *   input  = input_tokens (uncached) + cache_creation_input_tokens + cache_read_input_tokens
 *   cached = round(100 * cache_read_input_tokens / input), 0 when input is 0
 *   cost   = '$' + cost_usd to 4 decimals, or 'cost unknown' when cost_usd is null
 *   line   = '{input:,} in ({cached}% cached) · {output:,} out · {cost}'
 *
 * Rounding follows Python's (half to even, on the exact binary value), so a number
 * shows the same here as in the cell footer. No runtime imports: it runs in plain Node.
 */

import type { UsageTotals } from './protocolTypes';

/** The numbers a usage line is made of (a `usage` event or `state.usage` has them). */
export type UsageNumbers = Pick<
  UsageTotals,
  | 'input_tokens'
  | 'output_tokens'
  | 'cache_creation_input_tokens'
  | 'cache_read_input_tokens'
  | 'cost_usd'
>;

export function zeroUsage(): UsageNumbers {
  return {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cost_usd: 0
  };
}

/** The sum of two usages; the cost is unknown if either is. */
export function addUsage(a: UsageNumbers, b: UsageNumbers): UsageNumbers {
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
    cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
    cost_usd: a.cost_usd === null || b.cost_usd === null ? null : a.cost_usd + b.cost_usd
  };
}

/** All input tokens of the requests: uncached, written to the cache and read from it. */
export function inputTokens(u: UsageNumbers): number {
  return u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
}

/** The share of the input read from the cache, in whole percent. */
export function cachedPercent(u: UsageNumbers): number {
  const input = inputTokens(u);
  return input > 0 ? roundHalfEven((100 * u.cache_read_input_tokens) / input) : 0;
}

/** `$0.0145`, or `cost unknown` when the model's prices are not known. */
export function formatCost(cost: number | null): string {
  return cost === null ? 'cost unknown' : '$' + fixedHalfEven(cost, 4);
}

/** An integer with thousands separators, as Python's `{:,}`. */
export function formatCount(n: number): string {
  const digits = Math.trunc(Math.abs(n)).toString();
  return (n < 0 ? '-' : '') + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `20,000 in (90% cached) · 2,048 out · $0.0713` */
export function formatUsage(u: UsageNumbers): string {
  return (
    `${formatCount(inputTokens(u))} in (${cachedPercent(u)}% cached) · ` +
    `${formatCount(u.output_tokens)} out · ${formatCost(u.cost_usd)}`
  );
}

/** Python's round(x) for a finite x: to the nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor; // exact for the magnitudes tokens reach
  if (diff > 0.5) {
    return floor + 1;
  }
  if (diff < 0.5) {
    return floor;
  }
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Python's `f"{x:.{places}f}"`: the exact binary value of x rounded half to even.
 * (`toFixed` rounds exact ties up: 0.03125 -> "0.0313" where Python has "0.0312".)
 */
export function fixedHalfEven(x: number, places: number): string {
  if (!Number.isFinite(x) || Math.abs(x) >= 1e21) {
    return x.toFixed(places);
  }
  // toFixed(100) is the exact decimal value for every double this large or larger
  // than 1e-14; smaller ones round to zero at 4 places whatever their tail.
  const exact = Math.abs(x).toFixed(100);
  const [whole, fraction] = exact.split('.');
  const kept = whole + fraction.slice(0, places);
  const rest = fraction.slice(places);
  let scaled = BigInt(kept);
  const half = '5' + '0'.repeat(rest.length - 1);
  if (rest > half || (rest === half && scaled % 2n === 1n)) {
    scaled += 1n;
  }
  const text = scaled.toString().padStart(places + 1, '0');
  const sign = x < 0 || Object.is(x, -0) ? '-' : ''; // as Python: -0.0000
  return places > 0 ? `${sign}${text.slice(0, -places)}.${text.slice(-places)}` : `${sign}${text}`;
}
