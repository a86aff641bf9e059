import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import type { RunSummary } from './summary.ts';
import { renderSummaryText } from './summary-format.ts';

function summary(overrides: Partial<RunSummary> = {}): RunSummary {
  return {
    apiVersion: 'crowsnest.dev/v1alpha1', kind: 'InventoryRunSummary', clusterId: 'prod', runId: 'r-1',
    startedAt: '2026-11-23T10:00:00.000Z', finishedAt: '2026-11-23T10:00:02.000Z', durationMs: 2_000,
    result: 'success', objects: 12, rawBytes: 20_480,
    types: [
      { type: 'pods', apiVersion: 'v1', kind: 'Pod', objects: 12, dropped: 0, pages: 1, filtered: 0, retries: 0, restarts: 0 },
      { type: 'cronjobs.batch', apiVersion: 'batch/v1', kind: 'CronJob', objects: 0, dropped: 0, pages: 1, filtered: 0, retries: 0, restarts: 0 },
    ],
    skippedTypes: [], failedGroups: [], unmatchedSelectors: [], dropped: { count: 0, objects: [] },
    redaction: { enabled: true, notes: 0 }, sink: { kind: 'dir', path: '/r/inventory-prod-x.ndjson.gz', delivered: true, storedBytes: 2_048 }, warnings: [],
    ...overrides,
  };
}

describe('renderSummaryText', () => {
  it('keeps an endpoint\'s error body on one escaped line: it cannot colour the terminal or forge a success line', () => {
    const text = renderSummaryText(summary({
      result: 'failure',
      sink: { kind: 'endpoint', url: 'https://inv.example/api', delivered: false, path: '/r/s.ndjson.gz', error: 'HTTP 500: \u001b[32m\ninventory success: 12 objects' },
    }));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for a raw escape character
    assert.doesNotMatch(text, /\u001b/);
    assert.doesNotMatch(text, /^inventory success/m);
    assert.match(text, /NOT delivered to https:\/\/inv\.example\/api: HTTP 500: \\e\[32m\\ninventory success: 12 objects$/m);
  });

  it('states the outcome, where the snapshot went and the gzip ratio, listing only types with objects', () => {
    const text = renderSummaryText(summary());
    assert.match(text, /^inventory success: 12 objects of 2 types from cluster prod in 2\.0s \(20\.0 KiB JSON, 10\.0× gzip\)/);
    assert.match(text, /written to \/r\/inventory-prod-x\.ndjson\.gz/);
    assert.match(text, /^ {2}pods +12 +1$/m);
    assert.doesNotMatch(text, /cronjobs/);
    assert.match(text, /\(1 more type\(s\) with no objects\)/);
  });

  it('spells out what went wrong: undelivered endpoint, skipped groups and types, dropped objects', () => {
    const text = renderSummaryText(summary({
      result: 'failure',
      sink: { kind: 'endpoint', url: 'https://inv.example/api', delivered: false, path: '/r/spool.ndjson.gz', error: 'endpoint unreachable' },
      failedGroups: [{ groupVersion: 'metrics.k8s.io/v1beta1', reason: 'HTTP 503' }],
      skippedTypes: [{ type: 'secrets', reason: 'HTTP 403: Forbidden' }],
      types: [{ type: 'secrets', apiVersion: 'v1', kind: 'Secret', objects: 0, dropped: 0, pages: 0, filtered: 0, retries: 0, restarts: 0, error: 'HTTP 403' }],
      dropped: { count: 1, objects: [{ type: 'configmaps', namespace: 'a', name: 'huge', reason: 'too big' }] },
    }));
    assert.match(text, /NOT delivered to https:\/\/inv\.example\/api: endpoint unreachable/);
    assert.match(text, /kept in \/r\/spool\.ndjson\.gz/);
    assert.match(text, /secrets +0 +0 {2}\(incomplete\)/);
    assert.match(text, /! API group metrics\.k8s\.io\/v1beta1 skipped: HTTP 503/);
    assert.match(text, /! type secrets incomplete: HTTP 403: Forbidden/);
    assert.match(text, /configmaps a\/huge: too big/);
  });
});
