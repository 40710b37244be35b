/**
 * `make dashboard`: writes the dashboard JSON to deploy/grafana/shardwise.json (for import into Grafana)
 * and to the chart's files/ folder, which helm cannot read outside the chart (the ConfigMap ships it).
 * Both are generated output: edit panels.ts or dashboard.ts, never the JSON.
 */
import { writeFileSync } from 'node:fs';
import { DASHBOARD_FILES, dashboardJson } from './dashboard';

const json = dashboardJson();
for (const file of DASHBOARD_FILES) {
  writeFileSync(file, json);
  process.stdout.write(`wrote ${file}\n`);
}
