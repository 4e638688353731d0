// The words users see when the KV cache says no: a 429 while full, a 400 for a request that
// could never fit. Numbers are written with thousands separators, the same on every machine.
import type { KvShortage } from '@baton/contracts';

/** 1234567 → "1,234,567" (no locale lookup, so every process prints the same). */
export function formatCount(value: number): string {
  const sign = value < 0 ? '-' : '';
  const digits = String(Math.trunc(Math.abs(value)));
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** "KV cache full: 1,234 of 1,240 blocks in use on node mini-1; retry later or lower max_tokens" */
export function formatKvFullMessage(shortage: Pick<KvShortage, 'usedBlocks' | 'capacityBlocks' | 'nodeName'>): string {
  return `KV cache full: ${formatCount(shortage.usedBlocks)} of ${formatCount(shortage.capacityBlocks)} blocks in use on node ${shortage.nodeName}; retry later or lower max_tokens`;
}

export interface TooLargeNumbers {
  promptTokens: number;
  maxTokens: number;
  neededBlocks: number;
  capacityBlocks: number;
  nodeName: string;
  blockTokens: number;
}

/**
 * "request needs 2,050 KV blocks (32,000 prompt + 800 max_tokens = 32,800 tokens) but node mini-1
 * holds at most 1,240 blocks (19,840 tokens) for this model; shorten the prompt or lower max_tokens"
 */
export function formatKvTooLargeMessage(numbers: TooLargeNumbers): string {
  const total = numbers.promptTokens + numbers.maxTokens;
  return (
    `request needs ${formatCount(numbers.neededBlocks)} KV blocks (${formatCount(numbers.promptTokens)} prompt + ` +
    `${formatCount(numbers.maxTokens)} max_tokens = ${formatCount(total)} tokens) but node ${numbers.nodeName} holds at most ` +
    `${formatCount(numbers.capacityBlocks)} blocks (${formatCount(numbers.capacityBlocks * numbers.blockTokens)} tokens) for this model; ` +
    `shorten the prompt or lower max_tokens`
  );
}
