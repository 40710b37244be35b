/**
 * The shardwise Grafana dashboard, built with Grafana's typed builders (@grafana/grafana-foundation-sdk)
 * from the panel list in panels.ts. `make dashboard` writes it to deploy/grafana/shardwise.json and the
 * chart's copy; a test fails when either is stale.
 */
import * as path from 'node:path';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import { ReduceDataOptionsBuilder } from '@grafana/grafana-foundation-sdk/common';
import {
  DashboardBuilder,
  DashboardCursorSync,
  DatasourceVariableBuilder,
  MappingType,
  QueryVariableBuilder,
  RowBuilder,
  VariableRefresh,
  type Dashboard,
  type Panel,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as StatPanel } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as StateTimelinePanel } from '@grafana/grafana-foundation-sdk/statetimeline';
import { PanelBuilder as TimeseriesPanel } from '@grafana/grafana-foundation-sdk/timeseries';
import { DASHBOARD_ROWS, type PanelSpec } from './panels';

/** The dashboard's uid: stable, so re-importing replaces it and links to it keep working. */
export const DASHBOARD_UID = 'shardwise-training';
/** Every panel and query reads from the data source the `datasource` variable picks. */
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
/** Height of every panel in grid units. */
const PANEL_HEIGHT = 8;

function panel(spec: PanelSpec): cog.Builder<Panel> {
  const targets = spec.queries.map((q, i) =>
    new DataqueryBuilder().datasource(DATASOURCE).expr(q.expr).legendFormat(q.legend).refId(String.fromCharCode(65 + i)));
  const common = <T extends TimeseriesPanel | StatPanel | StateTimelinePanel>(b: T): T =>
    b.title(spec.title).description(spec.description).unit(spec.unit).datasource(DATASOURCE)
      .targets(targets).height(PANEL_HEIGHT).span(spec.width) as T;
  switch (spec.kind) {
    case 'timeseries':
      return common(new TimeseriesPanel()).lineWidth(1).fillOpacity(10);
    case 'stat':
      // The last value of each query, by its legend.
      return common(new StatPanel()).reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
    case 'state-timeline':
      return common(new StateTimelinePanel()).min(0).max(1)
        .mappings([{ type: MappingType.ValueToText, options: { '0': { text: 'training' }, '1': { text: 'frozen' } } }]);
  }
}

/** Builds the dashboard model (the JSON Grafana imports). */
export function buildDashboard(): Dashboard {
  const builder = new DashboardBuilder('shardwise training')
    .uid(DASHBOARD_UID)
    .description('A shardwise distributed fine-tuning job: progress, step time, quality, configuration, membership, traffic.')
    .tags(['shardwise', 'training'])
    .refresh('30s')
    .time({ from: 'now-1h', to: 'now' })
    .timezone('browser')
    .tooltip(DashboardCursorSync.Crosshair)
    .withVariable(new DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'))
    .withVariable(
      new QueryVariableBuilder('namespace')
        .label('Namespace')
        .datasource(DATASOURCE)
        .query('label_values(shardwise_desired_workers, namespace)')
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .multi(true)
        .includeAll(true)
        .allValue('.*'),
    );
  for (const row of DASHBOARD_ROWS) {
    builder.withRow(new RowBuilder(row.title));
    for (const spec of row.panels) builder.withPanel(panel(spec));
  }
  return builder.build();
}

/** The dashboard as committed: 2-space JSON with a final newline. */
export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}

/** Where the generated JSON is committed: the file to import, and the chart's copy for its ConfigMap. */
export const DASHBOARD_FILES: readonly string[] = [
  path.resolve(__dirname, 'shardwise.json'),
  path.resolve(__dirname, '..', '..', 'helm', 'shardwise', 'files', 'shardwise-dashboard.json'),
];
