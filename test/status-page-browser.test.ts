import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { exitCodeOf } from '../launcher';
import { statusPageUrl } from '../status';
import { ClusterHarness, type CoordinatorProc, type WorkerProc } from './support/cluster';
import { EPOCHS, testJobYaml } from './support/cluster-data';
import { withDeadline } from './support/deadline';

/** Debian's chromium; the Makefile's TEST_DEB_PACKAGES installs it. */
const CHROMIUM = '/usr/bin/chromium';
/** Flags for a headless run as root in a container, with nothing phoning home. */
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run',
  '--disable-component-update', '--disable-sync',
];
/** Where the screenshot goes (ignored by git), for a person to look at after the run. */
const ARTIFACTS_DIR = path.join(__dirname, '..', 'test-artifacts');
const WAIT_MS = 90_000;

// What the functions run inside Chromium use of the page (Node's tsconfig has no DOM library).
interface PageElement {
  getAttribute(name: string): string | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
  readonly textContent: string | null;
}
declare const document: {
  getElementById(id: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
};
declare const window: { stepCounts: number[] };
declare class MutationObserver {
  constructor(callback: () => void);
  observe(target: PageElement, options: { attributes: boolean; attributeFilter: string[] }): void;
}

// The coordinator's status page in a real headless Chromium, over a real job: nats-server, the coordinator
// and two worker processes training on a small generated dataset. The page is opened before the workers
// start, so it must pick them up and grow its curves from the stream alone.
describe('status page in Chromium: a live local job', function () {
  this.timeout(180_000);
  let harness: ClusterHarness;
  let context: BrowserContext | undefined;
  let profile: string | undefined;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `expected Debian's chromium at ${CHROMIUM} (make deb-packages installs it)`);
    harness = await ClusterHarness.create();
  });

  after(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await harness?.dispose();
  });

  async function openPage(url: string): Promise<{ page: Page; requests: string[]; problems: string[] }> {
    profile = mkdtempSync(path.join(tmpdir(), 'shardwise-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1360, height: 1000 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(url);
    return { page, requests, problems };
  }

  /** The `data-steps` values the loss chart took, recorded in the page as it redraws. */
  async function watchLossCurve(page: Page): Promise<void> {
    await page.evaluate(() => {
      const chart = document.getElementById('loss-chart')!;
      const seen: number[] = [];
      window.stepCounts = seen;
      new MutationObserver(() => {
        const n = Number(chart.getAttribute('data-steps') ?? 0);
        if (seen[seen.length - 1] !== n) seen.push(n);
      }).observe(chart, { attributes: true, attributeFilter: ['data-steps'] });
    });
  }

  const stepCounts = (page: Page): Promise<number[]> => page.evaluate(() => window.stepCounts);

  it('lists both workers, grows its loss curve as steps commit, shows the timeline and a killed worker', async () => {
    // One more epoch than the other distributed tests, so the coordinator still serves when the screenshot is taken.
    const epochs = EPOCHS + 1;
    const job = harness.writeJob('status', testJobYaml('status-page', { minWorkers: 1 }));
    const coordinator: CoordinatorProc = await harness.startCoordinator({ job, set: [`training.epochs=${epochs}`] });
    const url = statusPageUrl(coordinator.ready.metrics);
    const { page, requests, problems } = await openPage(url);
    await page.waitForFunction(() => document.getElementById('job-name')?.textContent === 'status-page', undefined, { timeout: WAIT_MS });
    await watchLossCurve(page);
    assert.equal(await page.locator('#loss-chart').getAttribute('data-steps'), '0', 'no step before any worker');

    const workers: WorkerProc[] = await harness.startWorkers(coordinator.ready.grpc, 2);
    await page.waitForFunction(
      () => [...document.querySelectorAll('#workers tbody tr[data-worker]')].map((r) => r.getAttribute('data-worker')).join(',') === 'worker-1,worker-2',
      undefined,
      { timeout: WAIT_MS },
    );
    // The curve grows in the page while the job runs: at least two different non-zero point counts, rising.
    await page.waitForFunction(
      () => window.stepCounts.filter((n) => n > 0).length >= 2,
      undefined,
      { timeout: WAIT_MS },
    );
    const counts = (await stepCounts(page)).filter((n) => n > 0);
    assert.ok(counts.every((n, k) => k === 0 || n > counts[k - 1]), `expected rising point counts, got ${counts.join(', ')}`);
    assert.ok(counts[counts.length - 1] < epochs * harness.stepsPerEpoch, `the job had finished before the page saw it grow: ${counts.join(', ')}`);

    // Two epochs in: validation points, the unfreeze and its learning-rate change, checkpoints, joins.
    await page.waitForFunction(() => document.querySelectorAll('#epochs tbody tr:not(.none)').length >= 2, undefined, { timeout: WAIT_MS });
    const kinds = await page.locator('#timeline li').evaluateAll((items) => items.map((li) => li.getAttribute('data-kind')));
    for (const kind of ['join', 'freeze', 'unfreeze', 'lr-change', 'checkpoint', 'state']) {
      assert.ok(kinds.includes(kind), `expected a ${kind} event in the timeline, got ${kinds.join(', ')}`);
    }
    // Every worker row filled in: active, a step time, samples, a recent heartbeat. Waited for: on a loaded
    // machine a worker starved past its lease is dropped and registers again, and is briefly not active.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#workers tbody tr[data-worker]')];
      return rows.length === 2 && rows.every((tr) => {
        const [, , step, samples, beat] = [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '');
        return tr.getAttribute('data-state') === 'active' && /^\d+ ms$/.test(step) && Number(samples.replace(/\D/g, '')) > 0 &&
          /^\d+\.\d s ago$/.test(beat);
      });
    }, undefined, { timeout: WAIT_MS }).catch(async (err: unknown) => {
      const rows = await page.locator('#workers tbody tr').evaluateAll((trs) => trs.map((tr) => tr.textContent));
      throw new Error(`expected both workers active with step time, samples and heartbeat; rows: ${rows.join(' | ')}`, { cause: err });
    });
    assert.equal(await page.locator('#groups tr[data-group="backbone"] .pill').textContent(), 'training');
    assert.ok(Number(await page.locator('#acc-chart').getAttribute('data-points')) > 2, 'accuracy chart has points');

    // A worker killed outright: the page shows it failed, why, and the failure in the timeline.
    workers[1].child.signal('SIGKILL');
    await page.waitForFunction(
      () => document.querySelectorAll('#workers tr[data-worker="worker-2"][data-state="failed"]').length === 1 &&
        document.querySelectorAll('#timeline li[data-kind="failure"]').length >= 1,
      undefined,
      { timeout: WAIT_MS },
    );

    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const shot = path.join(ARTIFACTS_DIR, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`      status page screenshot: ${shot}`);

    // Offline: every request the page made went to the coordinator; no script error, no CSP violation.
    const origin = new URL(url).origin;
    assert.deepEqual(requests.filter((r) => !r.startsWith(`${origin}/`)), [], 'requests to another origin');
    assert.deepEqual(problems, [], 'errors in the page');
    // SIGTERM drains the coordinator, which exits 0 although the page still holds its /events stream open.
    coordinator.child.signal('SIGTERM');
    assert.equal(exitCodeOf(await withDeadline(coordinator.child.exited, WAIT_MS, 'the coordinator to exit')), 0, coordinator.child.tail(40));
    await page.waitForFunction(() => document.getElementById('connection')?.getAttribute('class') === 'conn', undefined, { timeout: WAIT_MS });
  });
});
